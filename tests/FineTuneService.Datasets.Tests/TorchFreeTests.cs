namespace FineTuneService.Datasets.Tests;

/// <summary>The text layer is torch-free: the API host uses it, and these tests must run where libtorch cannot load.</summary>
public sealed class TorchFreeTests
{
    [Fact]
    public void Neither_the_library_nor_this_test_output_carries_TorchSharp_or_libtorch()
    {
        Assert.DoesNotContain(typeof(Jsonl.DatasetValidator).Assembly.GetReferencedAssemblies(), a => a.Name!.StartsWith("TorchSharp", StringComparison.Ordinal));
        var output = Directory.EnumerateFiles(AppContext.BaseDirectory, "*", SearchOption.AllDirectories)
            .Select(Path.GetFileName).ToList();
        Assert.DoesNotContain(output, f => f!.StartsWith("TorchSharp", StringComparison.OrdinalIgnoreCase)
                                           || f.Contains("libtorch", StringComparison.OrdinalIgnoreCase));
    }
}
