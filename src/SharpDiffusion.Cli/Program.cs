Console.WriteLine("SharpDiffusion");
