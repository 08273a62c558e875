using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using SharpDiffusion.Imaging;
using SharpDiffusion.Server.A1111;
using SharpDiffusion.Server.Hosting;
using SharpDiffusion.Training;

namespace SharpDiffusion.Server.Jobs;

/// <summary>
/// <c>POST /sharpdiffusion/v1/train/lora</c> (not an A1111 route: A1111 has no training API): trains a LoRA on the
/// loaded model as a <c>train-lora</c> job of the same queue as generations, so it waits its turn, reports progress to
/// /sdapi/v1/progress and GET /jobs/{id} (step of steps, stage "training"), and ends by /sdapi/v1/interrupt or the
/// job's cancel. The body: <c>name</c> (the LoRA's file name in serve --lora-dir), <c>images</c> (a list of
/// <c>{"image": base64, "caption": text}</c>) and train-lora's options in snake case. The pictures, checked and
/// written to a temporary kohya folder, and the options are refused in one line before the job is queued; the LoRA is
/// written atomically into the LoRA folder once trained, so /sdapi/v1/loras lists it only whole. One process only:
/// a gateway of a Redis queue refuses it (its workers' queue carries generation payloads, not training folders).
/// </summary>
public static partial class LoraTrainingEndpoints
{
    public const string Route = "/sharpdiffusion/v1/train/lora";
    public const string Kind = "train-lora";

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")]
    private static partial Regex LoraName();

    public static void Map(WebApplication app, ServerContext server) =>
        app.MapPost(Route, (HttpContext c) => ApiCall.A1111(c, async () =>
        {
            var body = await ServerContext.ReadObjectAsync(c);
            var job = Submit(server, body);
            return new JsonResult(202, job.Describe(await server.Queue.PositionOfAsync(job), withResult: false));
        }));

    /// <summary>Checks the request, writes its pictures to a temporary folder and queues the training.</summary>
    static Job Submit(ServerContext server, JsonObject body)
    {
        if (server.LocalQueue is not { } queue || server.CurrentModel is not { } model)
            throw new NotSupportedException($"{Route} trains on a one-process server; this one is a gateway of a Redis queue (serve without --queue to train).");
        if (server.Loras.Directory is not { } loraDir)
            throw new ArgumentException($"{Route}: this server has no LoRA folder to write to; start it with serve --lora-dir DIR.");
        var r = new RequestReader(body);
        string name = r.String("name") ?? "";
        if (!LoraName().IsMatch(name)) r.Error("name", "give the LoRA's file name: letters, digits, '_', '-' or '.', at most 100, no path");
        var images = body["images"] as JsonArray;
        if (images is null || images.Count == 0) r.Error("images", "give a list of {\"image\": base64 PNG/JPEG/WebP, \"caption\": text}");
        bool overwrite = r.Bool("overwrite", false);
        string output = Path.Combine(loraDir, name + ".safetensors");
        if (LoraName().IsMatch(name) && File.Exists(output) && !overwrite)
            r.Error("name", $"{name}.safetensors exists in the LoRA folder; choose another name or send \"overwrite\": true");
        var defaults = new LoraTrainingOptions { Model = "", Images = "", Output = "" };
        r.ThrowIfInvalid();

        string work = Directory.CreateTempSubdirectory("sharpdiffusion-train-").FullName;
        try
        {
            WritePictures(images!, Path.Combine(work, "images", "1_" + name), server.Options.MaxImageSide);
            var options = new LoraTrainingOptions
            {
                Model = model.Path,
                Images = Path.Combine(work, "images"),
                Output = output,
                CheckpointFile = Path.Combine(work, "checkpoint.safetensors"), // not in the LoRA folder, where it would be listed
                Rank = r.Int("rank", defaults.Rank, 1, 1024),
                Alpha = r.Double("alpha", defaults.Alpha, 0),
                Steps = r.Int("steps", defaults.Steps, 1, 1_000_000),
                LearningRate = r.Double("lr", defaults.LearningRate, 0),
                TextEncoderLearningRate = r.Has("text_encoder_lr") ? r.Double("text_encoder_lr", 0, 0) : null,
                Batch = r.Int("batch", defaults.Batch, 1, 64),
                Resolution = r.Has("resolution") ? r.Int("resolution", 0, 8, server.Options.MaxImageSide) : null,
                TrainTextEncoder = r.Bool("train_text_encoder", false),
                MinSnrGamma = r.Has("min_snr_gamma") ? r.Double("min_snr_gamma", 0, 0) : null,
                Seed = r.Int("seed", defaults.Seed),
                CheckpointEvery = r.Int("checkpoint_every", defaults.CheckpointEvery, 1),
                Buckets = r.Bool("buckets", false),
                MinBucketReso = r.Has("min_bucket_reso") ? r.Int("min_bucket_reso", 0, 8) : null,
                MaxBucketReso = r.Has("max_bucket_reso") ? r.Int("max_bucket_reso", 0, 8) : null,
                BucketResoSteps = r.Int("bucket_reso_steps", defaults.BucketResoSteps, 8),
                BaseDType = DType(r.String("dtype")),
                LossCsv = Path.Combine(work, "loss.csv"),
            };
            r.ThrowIfInvalid();
            new LoraTrainer(options).Validate(); // the same one-line refusals as the CLI's, before the job is queued
            return queue.Enqueue(new Job(ServerContext.NewJobId(), Kind, running => Train(running, options, name, work)));
        }
        catch
        {
            Directory.Delete(work, recursive: true);
            throw;
        }
    }

    /// <summary>float32 (the default), bfloat16, or auto (<see cref="Tuning.ComputeDType"/>: bf16 where the CPU computes it natively).</summary>
    static TorchSharp.torch.ScalarType DType(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "float32" or "fp32" => TorchSharp.torch.ScalarType.Float32,
        "bfloat16" or "bf16" => TorchSharp.torch.ScalarType.BFloat16,
        "auto" => Tuning.ComputeDType.Auto().DType,
        _ => throw new RequestValidationException([new FieldError("dtype", $"must be float32, bfloat16 or auto; got '{value}'", "value_error")]),
    };

    /// <summary>Each picture decoded (refused by index if it does not decode or is too large) and written as PNG with its caption.</summary>
    static void WritePictures(JsonArray images, string dir, int maxSide)
    {
        Directory.CreateDirectory(dir);
        for (int i = 0; i < images.Count; i++)
        {
            string field = $"images[{i}]";
            if (images[i] is not JsonObject entry || entry["image"] is not JsonValue v || !v.TryGetValue(out string? data))
                throw new RequestValidationException([new FieldError(field, "must be {\"image\": base64, \"caption\": text}", "type_error")]);
            string? caption = entry["caption"] is JsonValue c && c.TryGetValue(out string? text) ? text : null;
            byte[] bytes;
            try { bytes = Convert.FromBase64String(data[(data.IndexOf(',') + 1)..]); } // a data: URL's header is dropped
            catch (FormatException) { throw new RequestValidationException([new FieldError(field, "image is not base64", "value_error")]); }
            if (ImageFile.ReadSize(bytes) is not { } size)
                throw new RequestValidationException([new FieldError(field, "image is not a PNG, JPEG, WebP or BMP picture", "value_error")]);
            if (size.Width > maxSide || size.Height > maxSide)
                throw new RequestValidationException([new FieldError(field, $"image is {size.Width}x{size.Height}; this server takes sides up to {maxSide}", "value_error")]);
            string stem = Path.Combine(dir, $"picture_{i.ToString("D4", CultureInfo.InvariantCulture)}");
            var picture = ImageFile.Decode(bytes, field);
            PngFile.Save(stem + ".png", picture.Width, picture.Height, picture.Rgb);
            if (!string.IsNullOrWhiteSpace(caption)) File.WriteAllText(stem + ".txt", caption);
        }
    }

    /// <summary>The job's work: trains with its progress and cancellation; the temporary folder goes whatever the outcome.</summary>
    static JsonObject Train(Job job, LoraTrainingOptions options, string name, string work)
    {
        try
        {
            job.Report(new JobProgress(0, 1, 0, options.Steps, "loading"));
            double loss = double.NaN;
            var trainer = new LoraTrainer(options, p =>
            {
                loss = p.Loss;
                job.Report(new JobProgress(0, 1, p.Step, p.TotalSteps, "training"));
            });
            var (steps, elapsed) = trainer.Run(job.Cancellation);
            return new JsonObject
            {
                ["name"] = name,
                ["path"] = options.Output,
                ["steps"] = steps,
                ["seconds"] = Math.Round(elapsed.TotalSeconds, 1),
                ["loss"] = double.IsNaN(loss) ? null : loss,
                ["loss_curve"] = File.Exists(options.LossCsv) ? File.ReadAllText(options.LossCsv!) : null,
            };
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { } // a leftover temp folder is harmless
        }
    }
}
