using FineTuneService.Datasets;
using FineTuneService.Datasets.Sft;
using FineTuneService.Datasets.Tokenization;
using FineTuneService.Ml.Models;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Inference;

/// <summary>
/// A model loaded for serving: weights on a device in eval mode, its tokenizer and chat template, the tokens that
/// end an answer, and a <see cref="ContinuousBatcher"/> that decodes for every caller.
/// </summary>
public sealed class ServingModel : IDisposable
{
    private readonly ChatExampleEncoder _encoder;

    private ServingModel(DecoderLM model, ITextTokenizer tokenizer, GenerationConfig generation, int maxBatchSize, string name)
    {
        Model = model;
        Tokenizer = tokenizer;
        _encoder = new ChatExampleEncoder(tokenizer);
        StopTokenIds = new HashSet<int>([_encoder.EndOfTurnTokenId, .. model.Config.EosTokenIds, .. generation.EosTokenIds, tokenizer.EosTokenId]);
        ParameterBytes = model.parameters().Sum(p => p.numel() * p.ElementSize);
        Batcher = new ContinuousBatcher(model, maxBatchSize, name);
    }

    public DecoderLM Model { get; }
    public ITextTokenizer Tokenizer { get; }
    public IReadOnlySet<int> StopTokenIds { get; }
    public ContinuousBatcher Batcher { get; }

    /// <summary>Bytes of the weights (what the memory budget counts; the KV cache grows with the batch).</summary>
    public long ParameterBytes { get; }

    /// <summary>Positions the model can attend over: prompt plus answer.</summary>
    public int ContextLength => Model.Config.MaxPositionEmbeddings;

    /// <summary>Loads a Hugging Face folder (a base model, a fine-tuned model or an epoch checkpoint's) onto <paramref name="device"/>.</summary>
    public static ServingModel Load(string folder, Device device, int maxBatchSize, string name, ScalarType dtype = ScalarType.Float32)
    {
        var tokenizer = TokenizerFolder.Load(folder);
        var loaded = HuggingFaceCheckpoint.Load(folder, dtype, device);
        try
        {
            loaded.Model.eval();
            return new ServingModel(loaded.Model, tokenizer, loaded.Generation, maxBatchSize, name);
        }
        catch
        {
            loaded.Model.Dispose();
            throw;
        }
    }

    /// <summary>The chat rendered with the model's template, ending with the assistant's generation prompt.</summary>
    public int[] EncodePrompt(IReadOnlyList<ChatMessage> messages) => _encoder.EncodePrompt(messages);

    public void Dispose()
    {
        Batcher.Dispose();
        Model.Dispose();
    }
}
