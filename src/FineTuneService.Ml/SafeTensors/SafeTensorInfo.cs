namespace FineTuneService.Ml.SafeTensors;

/// <summary>One header entry: element type, shape and byte range relative to the start of the data section.</summary>
public sealed record SafeTensorInfo(string Name, SafeTensorDType DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}
