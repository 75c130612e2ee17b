using FineTuneService.Datasets;
using FineTuneService.Datasets.Sft;
using FineTuneService.Datasets.Templates;
using FineTuneService.Ml.Generation;
using FineTuneService.Ml.Models;

namespace FineTuneService.Ml.Evaluation.Evaluators;

/// <summary>
/// <see cref="IResponseGenerator"/> over a loaded decoder: each prompt becomes a single user turn rendered with the
/// model's chat template, decoded greedily in batches (KV cache) until the end-of-turn token or the token limit.
/// Prompts are batched by length (then text) so the batches — and so the outputs — do not depend on input order.
/// </summary>
public sealed class ModelResponseGenerator(DecoderLM model, ITextTokenizer tokenizer, ChatTemplate? template = null,
    int batchSize = 16, string? systemPrompt = null) : IResponseGenerator
{
    private readonly ChatExampleEncoder encoder = new(tokenizer, template);
    private readonly TextGenerator generator = new(model);

    public Task<IReadOnlyList<string>> GenerateAsync(IReadOnlyList<string> prompts, GenerationSettings settings,
        CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var maxPromptTokens = model.Config.MaxPositionEmbeddings - settings.MaxNewTokens;
        if (maxPromptTokens < 1)
            throw new ArgumentException($"MaxNewTokens {settings.MaxNewTokens} leaves no room for a prompt in {model.Config.MaxPositionEmbeddings} positions.", nameof(settings));

        var encoded = prompts.Select(p => KeepTail(encoder.EncodePrompt(Messages(p)), maxPromptTokens)).ToArray();
        var order = Enumerable.Range(0, prompts.Count)
            .OrderBy(i => encoded[i].Length)
            .ThenBy(i => prompts[i], StringComparer.Ordinal)
            .ToArray();
        var options = new GenerationOptions
        {
            MaxNewTokens = settings.MaxNewTokens,
            StopTokenIds = [encoder.EndOfTurnTokenId, .. model.Config.EosTokenIds, tokenizer.EosTokenId],
            PadTokenId = tokenizer.PadTokenId,
        };

        var responses = new string[prompts.Count];
        foreach (var batch in order.Chunk(batchSize))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var sequences = generator.Generate(batch.Select(i => (IReadOnlyList<int>)encoded[i]).ToList(), options);
            for (var j = 0; j < batch.Length; j++)
                responses[batch[j]] = tokenizer.Decode(sequences[j].TokenIds).Trim();
        }
        return Task.FromResult<IReadOnlyList<string>>(responses);
    }

    private List<ChatMessage> Messages(string prompt) => systemPrompt is null
        ? [new ChatMessage(ChatMessage.User, prompt)]
        : [new ChatMessage(ChatMessage.System, systemPrompt), new ChatMessage(ChatMessage.User, prompt)];

    /// <summary>Over-long prompts keep their end (the generation header and the request's last words).</summary>
    private static int[] KeepTail(int[] ids, int max) => ids.Length <= max ? ids : ids[^max..];
}
