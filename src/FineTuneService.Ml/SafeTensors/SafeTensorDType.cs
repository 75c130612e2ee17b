using TorchSharp;

namespace FineTuneService.Ml.SafeTensors;

/// <summary>Element types of the safetensors format that this reader and writer support.</summary>
public enum SafeTensorDType
{
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    BOOL,
}

/// <summary>Mapping between safetensors dtype names, TorchSharp scalar types and element sizes.</summary>
public static class SafeTensorDTypes
{
    /// <summary>Parses a header dtype name ("F32", "BF16", ...), or throws for an unknown one.</summary>
    public static SafeTensorDType Parse(string name, string context) =>
        Enum.GetNames<SafeTensorDType>().Contains(name, StringComparer.Ordinal)
            ? Enum.Parse<SafeTensorDType>(name)
            : throw new SafeTensorsFormatException(
                $"{context} has unsupported dtype '{name}' (supported: {string.Join(", ", Enum.GetNames<SafeTensorDType>())}).");

    public static int ElementSize(this SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.F64 or SafeTensorDType.I64 => 8,
        SafeTensorDType.F32 or SafeTensorDType.I32 => 4,
        SafeTensorDType.F16 or SafeTensorDType.BF16 or SafeTensorDType.I16 => 2,
        SafeTensorDType.I8 or SafeTensorDType.U8 or SafeTensorDType.BOOL => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    public static torch.ScalarType ToScalarType(this SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.F64 => torch.ScalarType.Float64,
        SafeTensorDType.F32 => torch.ScalarType.Float32,
        SafeTensorDType.F16 => torch.ScalarType.Float16,
        SafeTensorDType.BF16 => torch.ScalarType.BFloat16,
        SafeTensorDType.I64 => torch.ScalarType.Int64,
        SafeTensorDType.I32 => torch.ScalarType.Int32,
        SafeTensorDType.I16 => torch.ScalarType.Int16,
        SafeTensorDType.I8 => torch.ScalarType.Int8,
        SafeTensorDType.U8 => torch.ScalarType.Byte,
        SafeTensorDType.BOOL => torch.ScalarType.Bool,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    public static SafeTensorDType FromScalarType(torch.ScalarType type) => type switch
    {
        torch.ScalarType.Float64 => SafeTensorDType.F64,
        torch.ScalarType.Float32 => SafeTensorDType.F32,
        torch.ScalarType.Float16 => SafeTensorDType.F16,
        torch.ScalarType.BFloat16 => SafeTensorDType.BF16,
        torch.ScalarType.Int64 => SafeTensorDType.I64,
        torch.ScalarType.Int32 => SafeTensorDType.I32,
        torch.ScalarType.Int16 => SafeTensorDType.I16,
        torch.ScalarType.Int8 => SafeTensorDType.I8,
        torch.ScalarType.Byte => SafeTensorDType.U8,
        torch.ScalarType.Bool => SafeTensorDType.BOOL,
        _ => throw new NotSupportedException($"Tensors of type {type} cannot be stored in safetensors by this writer."),
    };
}
