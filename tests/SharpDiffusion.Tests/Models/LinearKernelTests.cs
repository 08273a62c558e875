using SharpDiffusion.Models;
using Xunit.Abstractions;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Tests.Models;

/// <summary>Each <see cref="LinearKernel"/> computes F.linear's product to float32 rounding, on the shapes the models use
/// (scaled down in rows), and the oneDNN path's channels-last view is x's own memory: no copy in, none out.</summary>
public class LinearKernelTests(ITestOutputHelper output)
{
    // rows × in → out: SD 1.5 attention and feed-forward (320→320, 320→2560, 1280→320), cross-attention keys (768→320),
    // SD3's width (1536→1536, 1536→6144, 6144→1536).
    public static TheoryData<long, long, long> Shapes() => new()
    {
        { 512, 320, 320 }, { 512, 320, 2560 }, { 512, 1280, 320 }, { 154, 768, 320 }, { 275, 1536, 1536 }, { 64, 1536, 6144 }, { 64, 6144, 1536 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Each_kernel_equals_F_linear(long rows, long inFeatures, long outFeatures)
    {
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        using var random = new Generator(1);
        var x = randn([2, rows / 2 + 1, inFeatures], generator: random);                         // [B, T, in]
        var weight = randn([outFeatures, inFeatures], generator: random) / Math.Sqrt(inFeatures); // [out, in]
        var bias = randn([outFeatures], generator: random);
        var expected = F.linear(x, weight, bias);
        foreach (var kernel in Enum.GetValues<LinearKernel>())
        {
            var y = LinearKernels.Linear(kernel, x, weight, bias);
            double diff = Golden.MaxAbsDiff(y, expected), scale = Golden.MaxAbs(expected);
            output.WriteLine($"[{x.shape[0]}x{x.shape[1]}, {inFeatures}] -> {outFeatures} {kernel}: max |diff| {diff:E2} (max |y| {scale:E2})");
            // Float32 sums of `in` products in another order: a few ulps of the largest value, far inside the goldens' 1e-4.
            Assert.True(diff <= 1e-6 * scale * Math.Sqrt(inFeatures), $"{kernel}: max |diff| {diff:E3} against F.linear (max |y| {scale:E3})");
        }
    }

    [Fact]
    public void Odd_inputs_take_the_same_product()
    {
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        using var random = new Generator(2);
        var weight = randn([48, 32], generator: random);
        var bias = randn([48], generator: random);
        var cases = new (string What, Tensor X, Tensor? Bias)[]
        {
            ("no bias", randn([3, 7, 32], generator: random), null),
            ("one row", randn([1, 32], generator: random), bias),
            ("a vector", randn([32], generator: random), bias),
            ("a transposed (non-contiguous) input", randn([32, 9], generator: random).t(), bias),
            ("every other row", randn([10, 32], generator: random)[TensorIndex.Slice(step: 2)], bias),
        };
        foreach (var (what, x, b) in cases)
        {
            var y = LinearKernels.Linear(LinearKernel.OneDnn, x, weight, b);
            double diff = Golden.AssertClose(y, F.linear(x, weight, b), rel: 1e-6, abs: 1e-6, what: what);
            output.WriteLine($"{what} [{string.Join(", ", x.shape)}]: max |diff| {diff:E2}");
        }
        Assert.Equal(new long[] { 0, 48 }, LinearKernels.Linear(LinearKernel.OneDnn, zeros([0, 32]), weight, bias).shape); // no rows
    }

    [Fact]
    public void The_channels_last_view_is_the_inputs_memory_and_the_output_is_rows()
    {
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        var rows = arange(6 * 4, dtype: ScalarType.Float32).reshape(6, 4); // [N = 6, in = 4]
        var image = LinearKernels.ChannelsLastImage(rows);                 // [1, 4, 6, 1]
        Assert.Equal(new long[] { 1, 4, 6, 1 }, image.shape);
        Assert.Equal(new long[] { 6 * 4, 1, 4, 4 }, image.stride());                  // NHWC strides over the same storage
        image[0, 2, 5, 0] = tensor(-1f);                                   // pixel 5, channel 2 ...
        Assert.Equal(-1f, rows[5, 2].item<float>());                       // ... is row 5, column 2: no copy was made

        var weight = randn([3, 4]);
        var y = F.conv2d(image, weight.reshape(3, 4, 1, 1));               // [1, 3, 6, 1]
        Assert.Equal(new long[] { 6 * 3, 1, 3, 3 }, y.stride());                       // channels-last out ...
        Assert.True(y.permute(0, 2, 3, 1).is_contiguous());                // ... so [N, out] is a view, not a copy
    }

    [Fact]
    public void Other_dtypes_take_F_linear_unchanged()
    {
        using var _ = inference_mode();
        using var scope = NewDisposeScope();
        using var random = new Generator(3);
        foreach (var dtype in new[] { ScalarType.BFloat16, ScalarType.Float16, ScalarType.Float64 })
        {
            var x = randn([5, 16], generator: random).to(dtype);
            var weight = randn([8, 16], generator: random).to(dtype);
            Assert.False(LinearKernels.Applies(x, weight));
            Assert.Equal(0, Golden.MaxAbsDiff(LinearKernels.Linear(LinearKernel.OneDnn, x, weight, null), F.linear(x, weight, null)));
        }
    }

    /// <summary>Autograd through the oneDNN product: the gradients of x, W and b equal F.linear's (training, LoRA on the
    /// transformers' layers).</summary>
    [Fact]
    public void Gradients_equal_F_linears()
    {
        using var scope = NewDisposeScope();
        using var random = new Generator(4);
        var x0 = randn([2, 33, 64], generator: random);
        var w0 = randn([96, 64], generator: random) / 8;
        var b0 = randn([96], generator: random);
        var upstream = randn([2, 33, 96], generator: random);
        (Tensor X, Tensor W, Tensor B) Gradients(LinearKernel kernel)
        {
            var (x, w, b) = (x0.clone().requires_grad_(), w0.clone().requires_grad_(), b0.clone().requires_grad_());
            (LinearKernels.Linear(kernel, x, w, b) * upstream).sum().backward();
            return (x.grad!, w.grad!, b.grad!);
        }
        var reference = Gradients(LinearKernel.Default);
        var oneDnn = Gradients(LinearKernel.OneDnn);
        foreach (var (what, a, e) in new[] { ("dx", oneDnn.X, reference.X), ("dW", oneDnn.W, reference.W), ("db", oneDnn.B, reference.B) })
            output.WriteLine($"{what}: max |diff| {Golden.AssertClose(a, e, rel: 1e-5, abs: 1e-6, what: what):E2}");
    }
}
