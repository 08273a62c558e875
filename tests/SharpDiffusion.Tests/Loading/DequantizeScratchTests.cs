using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Compact layers of one model dequantize into one shared buffer (<see cref="DequantizeScratch"/>): the outputs are
/// the fresh-tensor outputs bit for bit, layers of different shapes take turns in it, and a forward that autograd records
/// gets its own weight tensor (a shared one would be overwritten before the backward pass reads it).</summary>
public class DequantizeScratchTests(ITestOutputHelper output)
{
    /// <summary>Q8_0 blocks of random scales and codes for a [rows, columns] weight.</summary>
    static CompactWeight RandomQ8_0(int rows, int columns, int seed)
    {
        var rng = new Random(seed);
        var blocks = new byte[rows * columns / 32 * 34];
        rng.NextBytes(blocks);
        for (int b = 0; b < blocks.Length; b += 34)
            BitConverter.TryWriteBytes(blocks.AsSpan(b, 2), BitConverter.HalfToUInt16Bits((Half)(rng.NextDouble() * 0.01)));
        return CompactWeight.Gguf(tensor(blocks), [rows, columns], GgmlType.Q8_0, GgufArithmetic.Float16);
    }

    static Linear CompactLayer(int inFeatures, int outFeatures, int seed)
    {
        Linear layer;
        using (Layers.Placement(new Device("meta"))) layer = Layers.CompactLinear(inFeatures, outFeatures, hasBias: false);
        layer.UseCompact(RandomQ8_0(outFeatures, inFeatures, seed), ScalarType.Float32);
        return layer;
    }

    static float MaxDiff(Tensor a, Tensor b)
    {
        using var d = (a - b).abs().max();
        return d.item<float>();
    }

    [Fact]
    public void Layers_sharing_the_buffer_give_the_fresh_tensor_outputs_bit_for_bit()
    {
        using var big = CompactLayer(64, 96, 1);    // [96, 64]
        using var small = CompactLayer(96, 32, 2);  // [32, 96]
        using var x = randn([5, 64], generator: new Generator(3));
        Tensor expectedBig, expectedSmall;
        using (inference_mode()) // no shared buffer yet: each call dequantizes a fresh tensor
        {
            expectedBig = big.forward(x);
            expectedSmall = small.forward(expectedBig);
        }
        var scratch = new DequantizeScratch();
        big.ShareScratch(scratch);
        small.ShareScratch(scratch);
        for (int round = 0; round < 2; round++) // the second round reuses the grown buffer
            using (inference_mode())
            {
                using var y = big.forward(x);
                using var z = small.forward(y);
                output.WriteLine($"round {round}: max diff {MaxDiff(y, expectedBig)} / {MaxDiff(z, expectedSmall)}");
                Assert.True(MaxDiff(y, expectedBig) == 0 && MaxDiff(z, expectedSmall) == 0);
            }
        expectedBig.Dispose();
        expectedSmall.Dispose();
    }

    [Fact]
    public void A_recorded_forward_keeps_its_own_weight_for_the_backward_pass()
    {
        using var first = CompactLayer(32, 32, 4);
        using var second = CompactLayer(32, 32, 5);
        var scratch = new DequantizeScratch();
        first.ShareScratch(scratch);
        second.ShareScratch(scratch);
        using var x = randn([3, 32], generator: new Generator(6)).requires_grad_();
        using var y = second.forward(first.forward(x)).sum(); // with a shared buffer, second's weight would overwrite first's
        y.backward();
        using var w1 = first.DequantizedWeight();
        using var w2 = second.DequantizedWeight();
        using var expected = ones([3, 32]).matmul(w2).matmul(w1); // d/dx Σ (x W1ᵀ) W2ᵀ = 1 W2 W1
        output.WriteLine($"gradient max diff {MaxDiff(x.grad!, expected)}");
        Assert.True(MaxDiff(x.grad!, expected) < 1e-5f);
    }
}
