Console.WriteLine("fts");
