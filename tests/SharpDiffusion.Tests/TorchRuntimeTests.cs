namespace SharpDiffusion.Tests;

/// <summary>Issue 20, item 5: libtorch's "Could not initialize NNPACK!" never reaches the user: NNPACK is switched off in
/// libtorch itself (read back from libtorch), by the CLI, the server and the worker.</summary>
public class TorchRuntimeTests
{
    [Fact]
    public void NNPACK_is_off_as_libtorch_reports_it()
    {
        Assert.True(TorchRuntime.TurnOffNnpack(), "libtorch's NNPACK switch was not found or did not turn off");
    }

    [Fact]
    public void A_convolution_gives_the_same_values_with_NNPACK_off()
    {
        using var input = TorchSharp.torch.arange(2 * 3 * 9 * 9, dtype: TorchSharp.torch.float32).reshape(2, 3, 9, 9) / 100;
        using var weight = TorchSharp.torch.linspace(-1, 1, 4 * 3 * 3 * 3).reshape(4, 3, 3, 3);
        using var before = TorchSharp.torch.nn.functional.conv2d(input, weight, padding: [1, 1]);
        TorchRuntime.TurnOffNnpack();
        using var after = TorchSharp.torch.nn.functional.conv2d(input, weight, padding: [1, 1]);
        Assert.True(before.allclose(after, rtol: 0, atol: 0));
    }
}
