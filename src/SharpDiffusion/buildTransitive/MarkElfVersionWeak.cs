using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

// Sets VER_FLG_WEAK on one version requirement (Vernaux entry) of little-endian ELF64 shared libraries.
public class MarkElfVersionWeak : Task
{
    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;

    [Required] public ITaskItem[] Files { get; set; }
    [Required] public string VersionName { get; set; }

    public override bool Execute()
    {
        foreach (var item in Files)
        {
            string path = item.GetMetadata("FullPath");
            try
            {
                byte[] elf = File.ReadAllBytes(path);
                switch (Patch(elf))
                {
                    case 0:
                        Log.LogMessage(MessageImportance.Low, "{0}: no requirement on {1}", path, VersionName);
                        break;
                    case -1:
                        Log.LogMessage(MessageImportance.Low, "{0}: {1} already weak", path, VersionName);
                        break;
                    default:
                        string temp = path + ".weak-tmp";
                        File.WriteAllBytes(temp, elf);
                        File.Delete(path); // unlink first: never write through a hard link
                        File.Move(temp, path);
                        Log.LogMessage(MessageImportance.Normal, "{0}: marked {1} weak", path, VersionName);
                        break;
                }
            }
            catch (Exception e)
            {
                Log.LogError("Could not patch {0}: {1}", path, e.Message);
            }
        }
        return !Log.HasLoggedErrors;
    }

    // Returns the number of entries changed, 0 if none matched, -1 if all matches were already weak.
    int Patch(byte[] elf)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException("not a little-endian ELF64 file");

        long shoff = (long)BitConverter.ToUInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        int changed = 0, alreadyWeak = 0;
        for (int i = 0; i < shnum; i++)
        {
            long sh = shoff + (long)i * shentsize;
            if (BitConverter.ToUInt32(elf, (int)sh + 4) != ShtGnuVerneed) continue;
            long offset = (long)BitConverter.ToUInt64(elf, (int)sh + 0x18);
            int link = (int)BitConverter.ToUInt32(elf, (int)sh + 0x28);
            long strtab = (long)BitConverter.ToUInt64(elf, (int)(shoff + (long)link * shentsize) + 0x18);

            long need = offset;
            while (true)
            {
                int count = BitConverter.ToUInt16(elf, (int)need + 2);
                long aux = need + BitConverter.ToUInt32(elf, (int)need + 8);
                for (int j = 0; j < count; j++)
                {
                    long nameOffset = strtab + BitConverter.ToUInt32(elf, (int)aux + 8);
                    if (ReadCString(elf, nameOffset) == VersionName)
                    {
                        ushort flags = BitConverter.ToUInt16(elf, (int)aux + 4);
                        if ((flags & VerFlgWeak) != 0) alreadyWeak++;
                        else
                        {
                            BitConverter.GetBytes((ushort)(flags | VerFlgWeak)).CopyTo(elf, (int)aux + 4);
                            changed++;
                        }
                    }
                    uint nextAux = BitConverter.ToUInt32(elf, (int)aux + 12);
                    if (nextAux == 0) break;
                    aux += nextAux;
                }
                uint next = BitConverter.ToUInt32(elf, (int)need + 12);
                if (next == 0) break;
                need += next;
            }
        }
        return changed > 0 ? changed : alreadyWeak > 0 ? -1 : 0;
    }

    static string ReadCString(byte[] data, long start)
    {
        long end = start;
        while (end < data.Length && data[end] != 0) end++;
        return Encoding.ASCII.GetString(data, (int)start, (int)(end - start));
    }
}
