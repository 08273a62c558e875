using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// Bookkeeping every scheduler shares: the config, the timestep list, argument checks and diffusers'
/// step counter. The numerics live in the subclasses and in <see cref="NoiseSchedule"/>,
/// <see cref="TimestepSpacing"/> and <see cref="SigmaMath"/>.
/// </summary>
public abstract class SchedulerBase : IScheduler, IDisposable
{
    float[] _timesteps = [];
    readonly NoiseSchedule? _noiseSchedule;

    protected SchedulerBase(SchedulerConfig config, NoiseSchedule noiseSchedule)
    {
        Config = config;
        _noiseSchedule = noiseSchedule;
        NumTrainTimesteps = noiseSchedule.NumTrainTimesteps;
        PredictionType = config.GetString("prediction_type", "epsilon");
    }

    /// <summary>For schedulers without a β schedule (flow matching: x_t = (1-σ)·x_0 + σ·ε), whose model output has one
    /// meaning, <paramref name="predictionType"/>.</summary>
    protected SchedulerBase(SchedulerConfig config, int numTrainTimesteps, string predictionType)
    {
        Config = config;
        NumTrainTimesteps = numTrainTimesteps;
        PredictionType = predictionType;
    }

    public abstract string Name { get; }
    public SchedulerConfig Config { get; }
    public virtual int Order => 1;
    public IReadOnlyList<float> Timesteps => _timesteps;
    public abstract float InitNoiseSigma { get; }

    /// <summary>The noise levels σ of a k-diffusion style schedule (one more than the steps, ending in 0 or
    /// σ_min), or null for schedulers that work with ᾱ directly.</summary>
    public virtual IReadOnlyList<float>? Sigmas => null;

    /// <summary>β, ᾱ and σ of the training schedule (flow-matching schedulers have none: they throw).</summary>
    public NoiseSchedule NoiseSchedule => _noiseSchedule ??
        throw new InvalidOperationException($"{Name} has no β/ᾱ training schedule (flow matching moves linearly between x_0 and noise).");
    public int NumTrainTimesteps { get; }
    /// <summary>epsilon, v_prediction or sample (flow matching: flow, the velocity ε - x_0).</summary>
    public string PredictionType { get; }
    /// <summary>Steps requested in the last <see cref="SetTimesteps"/> (0 before).</summary>
    public int NumInferenceSteps { get; private set; }

    /// <summary>T/n (integer division): how far apart the inference timesteps of the ᾱ-based schedulers
    /// (DDIM, DDPM, PNDM) are, so t - T/n is the timestep after t.</summary>
    protected int StepRatio => NumTrainTimesteps / NumInferenceSteps;

    /// <summary>Index into <see cref="Timesteps"/> of the next step, set by the first
    /// <see cref="ScaleModelInput"/> or <see cref="Step"/> after <see cref="SetTimesteps"/>.</summary>
    protected int? StepIndex { get; set; }

    public void SetTimesteps(int numInferenceSteps) => SetTimesteps(numInferenceSteps, TimestepOptions.None);

    /// <summary>The inputs of the last <see cref="SetTimesteps(int, TimestepOptions)"/> besides the step count.</summary>
    protected TimestepOptions CallOptions { get; private set; } = TimestepOptions.None;

    /// <summary>Whether <see cref="TimestepOptions.Mu"/> and <see cref="TimestepOptions.Sigmas"/> mean something here
    /// (diffusers' set_timesteps of most schedulers has no such parameters).</summary>
    protected virtual bool AcceptsTimestepOptions => false;

    public void SetTimesteps(int numInferenceSteps, TimestepOptions options)
    {
        if (numInferenceSteps < 1 || numInferenceSteps > NumTrainTimesteps)
            throw new ArgumentOutOfRangeException(nameof(numInferenceSteps),
                $"{Name}: the number of inference steps must be between 1 and num_train_timesteps ({NumTrainTimesteps}), got {numInferenceSteps}.");
        if (!AcceptsTimestepOptions && (options.Mu is not null || options.Sigmas is not null))
            throw new ArgumentException($"{Name}: set_timesteps takes no mu or sigmas (flow-matching schedulers do); pass the step count only.", nameof(options));
        if (options.Sigmas is { } given && given.Count != numInferenceSteps)
            throw new ArgumentException($"{Name}: {given.Count} sigmas given for {numInferenceSteps} steps; give one per step.", nameof(options));
        CallOptions = options;
        NumInferenceSteps = numInferenceSteps;
        StepIndex = null;
        ResetState();
        _timesteps = [];
        _timesteps = RequireSteppable(ComputeTimesteps(numInferenceSteps), numInferenceSteps);
    }

    /// <summary>The largest timestep a schedule may hold: T-1 for discrete training steps, T for flow matching (t = σ·T).</summary>
    protected virtual float MaxTimestep => NumTrainTimesteps - 1;

    /// <summary>Multistep solvers divide by the log-SNR gap between consecutive steps, and find their place by the
    /// timestep's value: a repeated timestep gives 0/0.</summary>
    protected virtual bool NeedsDistinctTimesteps => false;

    /// <summary>Refuses a schedule the numerics cannot step through, instead of an index error or NaN later:
    /// "leading" with steps_offset reaches t = T at T steps (diffusers indexes ᾱ past its end there), and rounding
    /// repeats timesteps near T steps.</summary>
    float[] RequireSteppable(float[] timesteps, int n)
    {
        // Has, then the getter: a config without the key (flow matching's) is not asked for one it has no use for.
        string spacing = Config.Has("timestep_spacing") ? Config.GetString("timestep_spacing", "") : "";
        string how = $"{Name}: {n} steps" + (spacing.Length > 0 ? $" with timestep_spacing '{spacing}'" : "");
        foreach (float t in timesteps)
            if (!(t >= 0 && t <= MaxTimestep))
                throw new ArgumentOutOfRangeException("numInferenceSteps",
                    $"{how} reach timestep {t}, outside the training range 0-{MaxTimestep}; use fewer steps or timestep_spacing 'trailing'.");
        if (NeedsDistinctTimesteps && timesteps.Distinct().Count() != timesteps.Length)
            throw new ArgumentOutOfRangeException("numInferenceSteps",
                $"{how} repeat a timestep, which this multistep solver cannot step through; use fewer steps.");
        return timesteps;
    }

    /// <summary>Builds the schedule for <paramref name="numInferenceSteps"/> (already validated) and returns the
    /// timesteps; called after <see cref="ResetState"/>.</summary>
    protected abstract float[] ComputeTimesteps(int numInferenceSteps);

    /// <summary>Forgets the history of a previous run (multistep buffers, half-finished second-order steps).</summary>
    protected virtual void ResetState() { }

    public abstract Tensor ScaleModelInput(Tensor sample, float timestep);

    public abstract Tensor Step(Tensor modelOutput, float timestep, Tensor sample, Generator? generator = null);

    /// <summary>x_t for a clean x_0 and noise ε at <paramref name="timestep"/> (img2img, inpainting).</summary>
    public abstract Tensor AddNoise(Tensor original, Tensor noise, float timestep);

    /// <summary>diffusers' <c>_init_step_index</c>: the first call finds the timestep in the schedule (its
    /// second occurrence when it appears twice, as in Heun/KDPM2, so a schedule cut for img2img does not skip
    /// a σ); later calls must pass the timestep the counter expects.</summary>
    protected int CurrentStepIndex(float timestep)
    {
        if (_timesteps.Length == 0)
            throw new InvalidOperationException($"{Name}: call SetTimesteps before stepping.");
        if (StepIndex is not int index)
        {
            // The schedule's first timestep starts at step 0 even when it repeats: a σ spacing (beta, exponential) can
            // round its first σ's to one timestep, and the "second occurrence" rule below (meant for a schedule cut
            // for img2img) would then skip a step and run past the end.
            index = timestep == _timesteps[0] ? 0 : IndexForTimestep(timestep);
            StepIndex = index;
        }
        if (index >= _timesteps.Length)
            throw new InvalidOperationException($"{Name}: all {_timesteps.Length} steps are done; call SetTimesteps to start again.");
        if (_timesteps[index] != timestep)
            throw new ArgumentException($"{Name}: expected timestep {_timesteps[index]} (step {index} of {_timesteps.Length}), got {timestep}.", nameof(timestep));
        return index;
    }

    /// <summary>The position of <paramref name="timestep"/> in the schedule (the second one if it occurs twice).</summary>
    protected int IndexForTimestep(float timestep)
    {
        int first = Array.IndexOf(_timesteps, timestep);
        if (first < 0)
            throw NotInSchedule(timestep);
        int second = Array.IndexOf(_timesteps, timestep, first + 1);
        return second >= 0 ? second : first;
    }

    /// <summary>Checks that <paramref name="timestep"/> is one of <see cref="Timesteps"/> (schedulers that use the
    /// value itself rather than a counter: DDIM, DDPM, PNDM).</summary>
    protected int RequireInSchedule(float timestep)
    {
        if (_timesteps.Length == 0)
            throw new InvalidOperationException($"{Name}: call SetTimesteps before stepping.");
        int index = Array.IndexOf(_timesteps, timestep);
        return index >= 0 ? index : throw NotInSchedule(timestep);
    }

    ArgumentException NotInSchedule(float timestep)
    {
        string list = string.Join(", ", _timesteps.Take(8)) + (_timesteps.Length > 8 ? ", ..." : "");
        return new ArgumentException($"{Name}: timestep {timestep} is not in the schedule ({list}).", "timestep");
    }

    /// <summary>For samplers written for ε and v predictions only (the ancestral and KDPM2 ones).</summary>
    protected void RequireEpsilonOrVPrediction()
    {
        if (PredictionType is not ("epsilon" or "v_prediction"))
            throw new NotSupportedException($"{Name}: prediction_type '{PredictionType}' is not supported (epsilon or v_prediction).");
    }

    /// <summary>Keeps a tensor beyond the caller's dispose scope (history buffers); the scheduler disposes it.</summary>
    protected static Tensor Keep(Tensor t) => t.DetachFromDisposeScope();

    public void Dispose()
    {
        ResetState();
        GC.SuppressFinalize(this);
    }
}
