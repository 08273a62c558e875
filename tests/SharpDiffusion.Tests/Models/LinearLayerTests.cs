using SharpDiffusion.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Models;

/// <summary>Our <see cref="Linear"/> in place of TorchSharp's nn.Linear: a fresh layer (training from scratch) starts with
/// the same random values from the same seed, has the same state-dict names, computes the same bits and follows
/// <c>.to(dtype)</c>; with either kernel the gradients reach the weight and the bias.</summary>
public class LinearLayerTests
{
    [Fact]
    public void A_fresh_layer_is_nn_Linear_from_the_same_seed()
    {
        random.manual_seed(3);
        using var ours = Layers.Linear(7, 5);
        random.manual_seed(3);
        using var theirs = nn.Linear(7, 5);
        Assert.Equal(theirs.state_dict().Keys.Order(), ours.state_dict().Keys.Order());
        Assert.Equal(0, Golden.MaxAbsDiff(ours.weight, theirs.weight));
        Assert.Equal(0, Golden.MaxAbsDiff(ours.bias!, theirs.bias!));
        using var x = randn(3, 4, 7);
        using (no_grad())
            Assert.Equal(0, Golden.MaxAbsDiff(ours.call(x), theirs.call(x)));

        ours.to(ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, ours.weight.dtype);
        Assert.Equal(ScalarType.Float64, ours.bias!.dtype);
        Assert.All(ours.parameters(), p => Assert.Equal(ScalarType.Float64, p.dtype)); // the registered ones, not copies
    }

    [Fact]
    public void Gradients_are_F_linears_with_either_kernel()
    {
        using var layer = Layers.Linear(6, 4);
        using var x = randn(2, 3, 6);
        using var upstream = randn(2, 3, 4);
        (Tensor W, Tensor B) Gradients(LinearKernel kernel)
        {
            layer.Kernel = kernel;
            layer.weight.grad = null;
            layer.bias!.grad = null;
            using var loss = (layer.call(x) * upstream).sum();
            loss.backward();
            return (layer.weight.grad!.clone(), layer.bias.grad!.clone());
        }
        var (w, b) = Gradients(LinearKernel.Default);
        var (w1, b1) = Gradients(LinearKernel.OneDnn);
        Golden.AssertClose(w1, w, what: "d loss / d weight");
        Golden.AssertClose(b1, b, what: "d loss / d bias");
    }
}
