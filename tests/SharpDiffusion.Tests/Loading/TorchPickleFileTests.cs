using System.IO.Compression;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Issue 11, item 2: torch.save checkpoints read without running anything from them.</summary>
public class TorchPickleFileTests
{
    /// <summary>Same shape and dtype, every element equal.</summary>
    static bool Same(Tensor actual, Tensor expected)
    {
        if (actual.dtype != expected.dtype || !actual.shape.SequenceEqual(expected.shape)) return false;
        using var equal = actual.eq(expected).all();
        return equal.item<bool>();
    }

    static void AssertOneLineNaming(Exception e, string path)
    {
        Assert.Contains(path, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Single_file_ckpt_holds_the_same_tensors_as_the_safetensors()
    {
        using var ckpt = TorchPickleFile.Open(Golden.Path("single_file", "small-sd15.ckpt"));
        using var st = SafetensorsFile.Open(Golden.Path("single_file", "small-sd15.safetensors"));
        Assert.True(ckpt.HasStateDict);
        Assert.Equal(996, ckpt.Headers.Count);
        Assert.Equal(st.Headers.Select(h => h.Name), ckpt.Headers.Select(h => h.Name));
        foreach (var header in ckpt.Headers)
        {
            using var scope = NewDisposeScope();
            Assert.Equal(st.Tensors[header.Name].Shape, header.Shape);
            var actual = ckpt.Load(header.Name);
            var expected = st.Load(header.Name);
            Assert.Equal(expected.dtype, actual.dtype);
            Assert.True(Same(actual, expected), header.Name);
        }
    }

    [Fact]
    public void A1111_embedding_pt_reads_string_to_param_and_name()
    {
        using var pt = TorchPickleFile.Open(Golden.Path("textual_inversion", "cat-toy-2v_a1111.pt"));
        var expected = Golden.Load("textual_inversion", "cat-toy-2v_a1111_emb_params.safetensors")["emb_params"];
        Assert.False(pt.HasStateDict);
        Assert.Equal(["string_to_param.*"], pt.Headers.Select(h => h.Name));
        using var actual = pt.Load("string_to_param.*");   // a torch.nn.Parameter (_rebuild_parameter)
        Assert.Equal([2L, 64L], actual.shape);
        Assert.True(Same(actual, expected));
        Assert.Equal("cat-toy-2v", pt.Values["name"]);
        Assert.Equal(1000L, pt.Values["step"]);
        Assert.Equal(265L, pt.Values["string_to_token.*"]);
    }

    [Fact]
    public void CompVis_style_checkpoint_with_lightning_and_numpy_keys_reads_only_the_state_dict()
    {
        // What sd-v1-x.ckpt holds beside state_dict: epoch, global_step as a numpy scalar (dtype + _codecs.encode'd
        // bytes), Lightning callback states keyed by the ModelCheckpoint class and a reconstructed ModelCheckpoint.
        var p = new PickleBuilder().Proto(2).EmptyDict().Mark();
        p.String("epoch").Int(6);
        p.String("global_step").Global("numpy.core.multiarray", "scalar").Mark()
            .Global("numpy", "dtype").Mark().String("i8").Int(0).Int(1).Tuple().Op('R')
            .Mark().Int(3).String("<").Op('N').Op('N').Op('N').Int(-1).Int(-1).Int(0).Tuple().Op('b')
            .Global("_codecs", "encode").Mark().String("\u00e8\u0003\0\0\0\0\0\0").String("latin1").Tuple().Op('R')
            .Tuple().Op('R');
        p.String("callbacks").EmptyDict().Global("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint").EmptyDict()
            .String("best_model_score").Tensor("FloatStorage", "1", 1, 0, [], [])
            .Op('s').Op('s');
        p.String("checkpoint_callback").Global("copyreg", "_reconstructor").Mark()
            .Global("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint").Global("builtins", "object").Op('N').Tuple().Op('R')
            .EmptyDict().String("monitor").String("val/loss").Op('s').Op('b');
        p.String("optimizer_states").Op(']').EmptyDict().String("exp_avg").Tensor("FloatStorage", "1", 1, 0, [], []).Op('s').Op('a');
        p.String("state_dict").EmptyDict().Mark()
            .String("model.diffusion_model.out.2.bias").Tensor("FloatStorage", "0", 4, 0, [4], [1])
            .String("first_stage_model.quant_conv.bias").Tensor("HalfStorage", "2", 2, 0, [2], [1])
            .Op('u');
        byte[] pickle = p.Op('u').Stop().ToArray();

        using var temp = new TempDir();
        string path = temp.File("compvis.ckpt");
        using var weights = tensor(new float[] { 1, 2, 3, 4 });
        using var half = tensor(new float[] { 5, 6 }).to(float16);
        TorchCheckpointWriter.WriteArchive(path, pickle, [("0", weights.bytes.ToArray()), ("1", new byte[4]), ("2", half.bytes.ToArray())], archive: "compvis");

        using var file = TorchPickleFile.Open(path);
        Assert.True(file.HasStateDict);
        Assert.Equal(["model.diffusion_model.out.2.bias", "first_stage_model.quant_conv.bias"], file.Headers.Select(h => h.Name));
        Assert.Equal(6L, file.Values["epoch"]);
        using var bias = file.Load("model.diffusion_model.out.2.bias");
        using var halfBias = file.Load("first_stage_model.quant_conv.bias");
        Assert.True(Same(bias, weights));
        Assert.True(Same(halfBias, half));
    }

    [Theory]
    [InlineData("os", "system", false)]
    [InlineData("posix", "system", false)]
    [InlineData("builtins", "eval", true)]
    [InlineData("torch.storage", "_load_from_bytes", false)]   // would run torch.load on embedded bytes
    public void Pickle_calling_a_forbidden_global_is_refused_and_never_run(string module, string name, bool stackGlobal)
    {
        using var temp = new TempDir();
        string marker = temp.File("pwned");
        string command = module == "builtins" ? $"open('{marker}', 'w')" : $"touch '{marker}'";
        var pickle = new PickleBuilder().Proto(stackGlobal ? 4 : 2);
        if (stackGlobal)
            pickle.String(module).String(name).Op(0x93);   // STACK_GLOBAL
        else
            pickle.Global(module, name);
        byte[] bytes = pickle.String(command).Op(0x85).Op('R').Stop().ToArray();   // TUPLE1, REDUCE
        string path = temp.File("evil.ckpt");
        TorchCheckpointWriter.WriteArchive(path, bytes, []);

        var e = Assert.Throws<InvalidDataException>(() => TorchPickleFile.Open(path));
        Assert.Contains($"{module}.{name}", e.Message);
        Assert.Contains("refused", e.Message);
        AssertOneLineNaming(e, path);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public void Views_sharing_one_storage_load_as_contiguous_copies_in_their_dtypes()
    {
        using var temp = new TempDir();
        // Storage 0: 12 floats 0..11. "a" = all of it as [3, 4]; "b" = a transposed window [2, 3] from element 2.
        var pickle = new PickleBuilder().Proto(2).EmptyDict().Mark()
            .String("a").Tensor("FloatStorage", "0", 12, 0, [3, 4], [4, 1])
            .String("b").Tensor("FloatStorage", "0", 12, 2, [2, 3], [1, 4])
            .String("scalar").Tensor("FloatStorage", "0", 12, 5, [], [])
            .Op('u').Stop().ToArray();
        using var values = arange(12, dtype: float32);
        string path = temp.File("views.pt");
        TorchCheckpointWriter.WriteArchive(path, pickle, [("0", values.bytes.ToArray())]);

        using var file = TorchPickleFile.Open(path);
        using var a = file.Load("a");
        using var b = file.Load("b");
        using var scalar = file.Load("scalar");
        using var expectedB = tensor(new float[] { 2, 6, 10, 3, 7, 11 }).reshape(2, 3);
        Assert.True(Same(a, values.reshape(3, 4)));
        Assert.True(Same(b, expectedB));
        Assert.True(b.is_contiguous());
        Assert.Equal(5f, scalar.item<float>());

        string typed = temp.File("dtypes.bin");
        var tensors = TorchCheckpointWriter.StorageTypes.Keys.Select(dt => ($"t.{dt}", (arange(6, dtype: float64) - 2).to(dt).reshape(2, 3))).ToList();
        TorchCheckpointWriter.Write(typed, tensors);
        using var typedFile = TorchPickleFile.Open(typed);
        foreach (var (name, expected) in tensors)
        {
            using var actual = typedFile.Load(name);
            Assert.Equal(expected.dtype, actual.dtype);
            Assert.True(Same(actual, expected), name);
            expected.Dispose();
        }
    }

    [Fact]
    public void Legacy_non_zip_checkpoint_reads_the_same_tensors()
    {
        using var temp = new TempDir();
        using var st = SafetensorsFile.Open(Golden.Path("models", "tiny-sd", "vae", "diffusion_pytorch_model.safetensors"));
        var tensors = st.Headers.Take(30).Select(h => (h.Name, st.Load(h.Name))).ToList();
        tensors.Add(("half", tensors[0].Item2.to(float16)));
        // A name of 1.5 MB: the pickles outgrow the first 1 MB read of the file, which is then read again larger.
        tensors.Add((new string('x', 1_500_000), tensors[1].Item2.clone()));
        string path = temp.File("legacy.pt");
        TorchCheckpointWriter.WriteLegacy(path, tensors);

        using (var legacy = TorchPickleFile.Open(path))
        {
            Assert.Equal(tensors.Select(t => t.Name), legacy.Headers.Select(h => h.Name));
            foreach (var (name, expected) in tensors)
            {
                using var actual = legacy.Load(name);
                Assert.True(Same(actual, expected), name);
            }
        }
        byte[] whole = File.ReadAllBytes(path);
        foreach (int keep in new[] { whole.Length - 3, whole.Length / 2, 40 })
        {
            string truncated = temp.File($"legacy-{keep}.pt");
            File.WriteAllBytes(truncated, whole[..keep]);
            AssertOneLineNaming(Assert.Throws<InvalidDataException>(() => TorchPickleFile.Open(truncated)), truncated);
        }
        foreach (var (_, t) in tensors) t.Dispose();
    }

    [Fact]
    public void Truncated_zip_is_refused_naming_the_file()
    {
        using var temp = new TempDir();
        byte[] whole = File.ReadAllBytes(Golden.Path("textual_inversion", "cat-toy-2v_a1111.pt"));
        string path = temp.File("truncated.pt");
        File.WriteAllBytes(path, whole[..(whole.Length / 2)]);
        AssertOneLineNaming(Assert.Throws<InvalidDataException>(() => TorchPickleFile.Open(path)), path);
    }

    [Fact]
    public void File_that_is_not_a_pickle_is_refused_naming_the_file()
    {
        using var temp = new TempDir();
        string path = temp.File("notes.ckpt");
        File.WriteAllText(path, "this is not a checkpoint\n");
        AssertOneLineNaming(Assert.Throws<InvalidDataException>(() => TorchPickleFile.Open(path)), path);
    }

    [Fact]
    public void Garbage_data_pkl_is_refused_naming_the_file()
    {
        using var temp = new TempDir();
        var rng = new Random(11);
        for (int i = 0; i < 20; i++)
        {
            var garbage = new byte[rng.Next(1, 300)];
            rng.NextBytes(garbage);
            if (i % 2 == 0) { garbage[0] = 0x80; garbage[1] = 2; }   // a plausible start, then noise
            string path = temp.File($"garbage{i}.ckpt");
            TorchCheckpointWriter.WriteArchive(path, garbage, []);
            AssertOneLineNaming(Assert.Throws<InvalidDataException>(() => TorchPickleFile.Open(path)), path);
        }
    }

    [Fact]
    public void Storage_shorter_than_its_tensor_is_refused_naming_the_file()
    {
        using var temp = new TempDir();
        var pickle = new PickleBuilder().Proto(2).EmptyDict().String("w").Tensor("FloatStorage", "0", 16, 0, [4, 4], [4, 1]).Op('s').Stop().ToArray();
        string path = temp.File("short.bin");
        TorchCheckpointWriter.WriteArchive(path, pickle, [("0", new byte[40])]);
        var e = Assert.Throws<InvalidDataException>(() => TorchPickleFile.Open(path));
        AssertOneLineNaming(e, path);
        Assert.Contains("storage 0", e.Message);
    }

    [Fact]
    public void Diffusers_folder_with_bin_weights_loads_identical_weights()
    {
        using var temp = new TempDir();
        string source = Golden.Path("models", "tiny-sd");
        ModelFolderTests.CopyDir(source, temp.Path);
        foreach (var (component, stem) in new[] { ("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"), ("text_encoder", "model") })
        {
            string dir = Path.Combine(temp.Path, component);
            string safetensors = Path.Combine(dir, stem + ".safetensors");
            using (var st = SafetensorsFile.Open(safetensors))
            {
                var tensors = st.Headers.Select(h => (h.Name, st.Load(h.Name))).ToList();
                TorchCheckpointWriter.Write(Path.Combine(dir, stem + ".bin"), tensors, archive: stem);
                foreach (var (_, t) in tensors) t.Dispose();
            }
            File.Delete(safetensors);
        }

        var options = new LoadOptions { ChannelsLast = false };
        AssertSameWeights(ComponentLoader.LoadUNet(Path.Combine(source, "unet"), options), ComponentLoader.LoadUNet(Path.Combine(temp.Path, "unet"), options));
        AssertSameWeights(ComponentLoader.LoadVae(Path.Combine(source, "vae"), options), ComponentLoader.LoadVae(Path.Combine(temp.Path, "vae"), options));
        AssertSameWeights(ComponentLoader.LoadTextEncoder(Path.Combine(source, "text_encoder"), options),
            ComponentLoader.LoadTextEncoder(Path.Combine(temp.Path, "text_encoder"), options));
        using var pipeline = StableDiffusionPipeline.FromPretrained(temp.Path);
    }

    static void AssertSameWeights(nn.Module expected, nn.Module actual)
    {
        using (expected)
        using (actual)
        {
            var a = actual.state_dict();
            var e = expected.state_dict();
            Assert.Equal(e.Keys, a.Keys);
            foreach (var (name, t) in e)
                Assert.True(Same(a[name], t), name);
        }
    }
}
