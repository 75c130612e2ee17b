namespace FineTuneService.Datasets.Tokenization;

/// <summary>A byte-level BPE tokenizer whose model data can be saved as Hugging Face files.</summary>
public interface IByteLevelBpeTokenizer : ITextTokenizer
{
    BpeModel Model { get; }
}
