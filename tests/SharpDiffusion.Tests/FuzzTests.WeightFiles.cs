using System.Text;
using SharpDiffusion.Loading;

namespace SharpDiffusion.Tests;

/// <summary>The fuzzed weight files: safetensors headers (mutated JSON, wrong header lengths, short data) and torch.save
/// checkpoints (zip, data.pkl inside it, legacy), each opened and every tensor loaded.</summary>
public partial class FuzzTests
{
    static void SafetensorsHeaders(Random rng, Tally tally, TempDir temp, int cases)
    {
        byte[] seed = File.ReadAllBytes(Path.Combine(TinySd, "vae", "diffusion_pytorch_model.safetensors"));
        long headerLength = BitConverter.ToInt64(seed, 0);
        string header = Encoding.UTF8.GetString(seed, 8, (int)headerLength);
        var data = seed.AsMemory(8 + (int)headerLength);
        for (int i = 0; i < cases; i++)
        {
            string file = temp.File($"case{i}.safetensors");
            string mutated = MutateJson(header, rng, out string what);
            byte[] headerBytes = Encoding.UTF8.GetBytes(mutated);
            ulong claimed = (ulong)headerBytes.Length;
            if (rng.Next(8) == 0)
            {
                claimed = (ulong)(rng.Next(3) switch { 0 => 0L, 1 => long.MaxValue, _ => headerBytes.Length + rng.Next(-16, 16) });
                what += $", header length {claimed}";
            }
            using (var stream = File.Create(file))
            {
                stream.Write(BitConverter.GetBytes(claimed));
                stream.Write(headerBytes);
                stream.Write(data.Span[..(rng.Next(6) == 0 ? rng.Next(data.Length) : data.Length)]);
            }
            tally.Run("safetensors header", what, file, () =>
            {
                using var st = SafetensorsFile.Open(file);
                foreach (var name in st.Tensors.Keys)
                    st.Load(name).Dispose();
            });
        }
    }


    /// <summary>A small torch.save checkpoint (12 VAE tensors in a state_dict) mutated as a whole file (bits, truncation,
    /// overwritten runs), inside its data.pkl (the zip rebuilt around it), or in the legacy non-zip format.</summary>
    static void TorchCheckpoints(Random rng, Tally tally, TempDir temp, int cases)
    {
        string seedPath = temp.File("seed.ckpt"), legacyPath = temp.File("seed-legacy.pt");
        using (var st = SafetensorsFile.Open(Path.Combine(TinySd, "vae", "diffusion_pytorch_model.safetensors")))
        {
            var tensors = st.Headers.Take(12).Select(h => (h.Name, st.Load(h.Name))).ToList();
            Loading.TorchCheckpointWriter.Write(seedPath, tensors, inStateDict: true);
            Loading.TorchCheckpointWriter.WriteLegacy(legacyPath, tensors);
            foreach (var (_, t) in tensors) t.Dispose();
        }
        byte[] seed = File.ReadAllBytes(seedPath), legacySeed = File.ReadAllBytes(legacyPath);
        byte[] pickle;
        using (var zip = new System.IO.Compression.ZipArchive(new MemoryStream(seed)))
        using (var s = zip.GetEntry("archive/data.pkl")!.Open())
        using (var copy = new MemoryStream())
        {
            s.CopyTo(copy);
            pickle = copy.ToArray();
        }
        for (int i = 0; i < cases; i++)
        {
            string file = temp.File($"case{i}.ckpt");
            string what;
            int form = rng.Next(3);   // 0: inside data.pkl, 1: the zip file, 2: the legacy (non-zip) file
            bool inPickle = form == 0;
            byte[] bytes = (byte[])(form switch { 0 => pickle, 1 => seed, _ => legacySeed }).Clone();
            bytes = Damage(bytes, rng.Next(3), maxRun: 16, rng, out what);
            if (inPickle)
            {
                what = "data.pkl: " + what;
                var storages = new List<(string, byte[])>();
                using (var zip = new System.IO.Compression.ZipArchive(new MemoryStream(seed)))
                    foreach (var entry in zip.Entries.Where(e => e.FullName.StartsWith("archive/data/")))
                    {
                        using var s = entry.Open();
                        using var copy = new MemoryStream();
                        s.CopyTo(copy);
                        storages.Add((entry.FullName["archive/data/".Length..], copy.ToArray()));
                    }
                Loading.TorchCheckpointWriter.WriteArchive(file, bytes, storages);
            }
            else
            {
                if (form == 2) what = "legacy: " + what;
                File.WriteAllBytes(file, bytes);
            }
            tally.Run("torch checkpoint", what, file, () =>
            {
                using var ckpt = TorchPickleFile.Open(file);
                foreach (var header in ckpt.Headers)
                    ckpt.Load(header.Name).Dispose();
            });
        }
    }
}
