using System.Buffers.Binary;
using System.Text;
using FineTuneService.Ml.SafeTensors;
using FineTuneService.Ml.Tests.Models;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.SafeTensors;

public sealed class SafeTensorsTests
{
    private static Dictionary<string, Tensor> SampleTensors()
    {
        var generator = new Generator(42);
        return new Dictionary<string, Tensor>
        {
            ["a.f32"] = randn([3, 5], generator: generator),
            ["b.f16"] = randn([4, 2, 3], generator: generator).to_type(ScalarType.Float16),
            ["c.bf16"] = randn([7], generator: generator).to_type(ScalarType.BFloat16),
            ["d.i64"] = arange(0, 10, dtype: ScalarType.Int64).view(2, 5),
            ["e.i32"] = tensor(new[] { -1, 0, int.MaxValue }),
            ["f.scalar"] = tensor(3.5f),
            ["g.empty"] = zeros([0, 4]),
        };
    }

    [Fact]
    public void Round_trip_is_bit_identical_for_all_dtypes()
    {
        using var scope = NewDisposeScope();
        var tensors = SampleTensors();
        using var scratch = new TempDirectory();
        var path = Path.Combine(scratch.Path, "t.safetensors");

        SafeTensorsWriter.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt", ["note"] = "x" });
        using var file = SafeTensorsFile.Open(path);

        Assert.Equal(tensors.Keys.Order(), file.Tensors.Keys.Order());
        Assert.Equal("x", file.Metadata["note"]);
        Assert.Equal(SafeTensorDType.BF16, file.Tensors["c.bf16"].DType);
        foreach (var (name, expected) in tensors) TensorAssert.Identical(expected, file.Load(name), name);

        // Copy straight into an existing tensor, and with conversion.
        var destination = empty([3, 5]);
        file.CopyTo("a.f32", destination);
        TensorAssert.Identical(tensors["a.f32"], destination);
        var converted = empty([7], ScalarType.Float32);
        file.CopyTo("c.bf16", converted);
        TensorAssert.Identical(tensors["c.bf16"].to_type(ScalarType.Float32), converted);
    }

    [Fact]
    public void Data_section_is_aligned_and_offsets_are_contiguous()
    {
        using var scope = NewDisposeScope();
        using var scratch = new TempDirectory();
        var path = Path.Combine(scratch.Path, "t.safetensors");
        SafeTensorsWriter.Save(path, SampleTensors());

        var bytes = File.ReadAllBytes(path);
        var headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0, (8 + headerLength) % 8);
        using var file = SafeTensorsFile.Open(path);
        var ordered = file.Tensors.Values.OrderBy(t => t.Begin).ToList();
        Assert.Equal(0, ordered[0].Begin);
        for (var i = 1; i < ordered.Count; i++) Assert.Equal(ordered[i - 1].End, ordered[i].Begin);
        Assert.Equal(bytes.Length - 8 - headerLength, ordered[^1].End);
    }

    [Fact]
    public void Sharded_checkpoint_round_trips_with_index()
    {
        using var scope = NewDisposeScope();
        var tensors = SampleTensors();
        using var directoryScratch = new TempDirectory();
        var directory = directoryScratch.Path;

        var written = SafeTensorsCheckpoint.Save(directory, tensors, maxShardBytes: 64);

        Assert.Contains("model.safetensors.index.json", written);
        Assert.True(written.Count(n => n.EndsWith(".safetensors", StringComparison.Ordinal)) > 2);
        Assert.False(File.Exists(Path.Combine(directory, "model.safetensors")));
        var weightMap = SafeTensorsCheckpoint.ReadWeightMap(Path.Combine(directory, "model.safetensors.index.json"));
        Assert.Equal(tensors.Keys.Order(), weightMap.Keys.Order());
        Assert.Matches(@"^model-\d{5}-of-\d{5}\.safetensors$", weightMap["a.f32"]);

        using var checkpoint = SafeTensorsCheckpoint.Open(directory);
        foreach (var (name, expected) in tensors) TensorAssert.Identical(expected, checkpoint.Load(name), name);

        // Saving again unsharded removes the old shards and index.
        SafeTensorsCheckpoint.Save(directory, tensors);
        Assert.Single(Directory.GetFiles(directory, "*.safetensors*"));
    }

    [Theory]
    [InlineData("length-too-large")]
    [InlineData("length-zero")]
    [InlineData("too-short")]
    [InlineData("not-json")]
    [InlineData("unknown-dtype")]
    [InlineData("out-of-range")]
    [InlineData("overlap")]
    [InlineData("size-mismatch")]
    public void Malformed_files_are_rejected(string defect)
    {
        using var scratch = new TempDirectory();
        var path = Path.Combine(scratch.Path, defect + ".safetensors");
        const string twoTensors = """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""";
        byte[] content = defect switch
        {
            "length-too-large" => Build(twoTensors, 16, headerLengthOverride: 1_000_000),
            "length-zero" => Build(twoTensors, 16, headerLengthOverride: 0),
            "too-short" => [1, 2, 3],
            "not-json" => Build("{\"a\": [", 16),
            "unknown-dtype" => Build("""{"a":{"dtype":"F8_E9","shape":[2],"data_offsets":[0,2]}}""", 16),
            "out-of-range" => Build(twoTensors, 12),
            "overlap" => Build("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 16),
            "size-mismatch" => Build("""{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", 16),
            _ => throw new ArgumentOutOfRangeException(nameof(defect)),
        };
        File.WriteAllBytes(path, content);

        var error = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Contains(path, error.Message);
    }

    private static byte[] Build(string header, int dataBytes, ulong? headerLengthOverride = null)
    {
        var headerBytes = Encoding.UTF8.GetBytes(header);
        var result = new byte[8 + headerBytes.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(result, headerLengthOverride ?? (ulong)headerBytes.Length);
        headerBytes.CopyTo(result, 8);
        return result;
    }
}
