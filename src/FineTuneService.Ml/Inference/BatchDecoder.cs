using FineTuneService.Ml.Generation;
using FineTuneService.Ml.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Inference;

/// <summary>How one sequence is decoded: its own limit, stop tokens and sampling settings.</summary>
public sealed record SequenceOptions
{
    public int MaxNewTokens { get; init; } = 128;

    /// <summary>0 selects the most likely token (greedy).</summary>
    public double Temperature { get; init; }

    /// <summary>Nucleus sampling mass, in (0, 1].</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Seed of this sequence's sampling generator: the same seed gives the same tokens whatever else is decoded alongside.</summary>
    public long Seed { get; init; }

    /// <summary>Tokens that end the sequence (not emitted).</summary>
    public required IReadOnlySet<int> StopTokenIds { get; init; }

    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxNewTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(Temperature);
        if (TopP is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(TopP), TopP, "top_p must be in (0, 1].");
    }
}

/// <summary>A token a decode step produced for a sequence, or the end of that sequence (<see cref="Finished"/> set, no token).</summary>
public readonly record struct DecodedToken(long SequenceId, int? TokenId, FinishReason? Finished);

/// <summary>
/// The running batch of continuous batching: sequences join (<see cref="AddRange"/>: their prompts are prefilled together
/// and their first tokens sampled) and leave (stop token, limit, <see cref="Remove"/>) between decode steps, and each
/// <see cref="Step"/> decodes one token for every running sequence in one forward pass over a shared KV cache.
/// Every row keeps its last token in the cache's last column (shorter rows are padded on the left and masked), so
/// each sequence sees exactly the positions it would see alone. Not thread-safe: one thread drives it, under
/// no_grad with one dispose scope per call; <see cref="Dispose"/> frees the cache and restores the model's mode.
/// </summary>
public sealed class BatchDecoder : IDisposable
{
    private readonly DecoderLM _model;
    private readonly bool _wasTraining;
    private readonly List<Sequence> _running = [];
    private KvCache? _cache;
    private long _nextId;

    public BatchDecoder(DecoderLM model)
    {
        _model = model;
        _wasTraining = model.training;
        model.eval();
    }

    /// <summary>Sequences in the batch.</summary>
    public int Count => _running.Count;

    /// <summary>Columns of the shared cache (longest row plus the room the running sequences may still need).</summary>
    public int CacheCapacity => _cache?.Capacity ?? 0;

    /// <summary>The longest sequence (prompt and new tokens) the model's positions allow.</summary>
    public int MaxSequenceLength => _model.Config.MaxPositionEmbeddings;

    /// <summary>
    /// Prefills <paramref name="promptTokenIds"/> and samples its first token (returned; when that token ends the
    /// sequence at once, the sequence never joins the batch). The sequence decodes with the following steps.
    /// </summary>
    public (long SequenceId, DecodedToken First) Add(IReadOnlyList<int> promptTokenIds, SequenceOptions options) =>
        AddRange([(promptTokenIds, options)])[0];

    /// <summary>
    /// Prefills several prompts together, in one forward pass over a left-padded batch, and joins them to the running
    /// batch with one re-layout of the cache; returns each one's id and first token, in order (as <see cref="Add"/>).
    /// </summary>
    /// <exception cref="ArgumentException">A prompt is empty, has ids outside the vocabulary, or is too long with its limit; none joins.</exception>
    public IReadOnlyList<(long SequenceId, DecodedToken First)> AddRange(IReadOnlyList<(IReadOnlyList<int> PromptTokenIds, SequenceOptions Options)> prompts)
    {
        if (prompts.Count == 0) return [];
        foreach (var (prompt, options) in prompts) Check(prompt, options);

        var joining = prompts.Select(p => new Sequence(_nextId++, p.Options,
            p.Options.Temperature > 0 ? new Random(unchecked((int)(p.Options.Seed ^ (p.Options.Seed >> 32)))) : null)).ToList();
        var longest = prompts.Max(p => p.PromptTokenIds.Count);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var joiner = new KvCache(_model.Config, prompts.Count, longest, _model.DType, _model.Device);
        try
        {
            // Left padding (id 0, masked): every prompt's last token sits in the last column.
            var ids = new long[prompts.Count * longest];
            var real = new bool[prompts.Count * longest];
            for (var row = 0; row < prompts.Count; row++)
            {
                var prompt = prompts[row].PromptTokenIds;
                for (var i = 0; i < prompt.Count; i++)
                {
                    ids[row * longest + longest - prompt.Count + i] = prompt[i];
                    real[row * longest + longest - prompt.Count + i] = true;
                }
            }
            var input = tensor(ids, [prompts.Count, longest], ScalarType.Int64, _model.Device);
            var mask = prompts.Count == 1 ? null : tensor(real, [prompts.Count, longest], ScalarType.Bool, _model.Device);
            using var output = _model.Forward(input, new DecoderForwardOptions { AttentionMask = mask, Cache = joiner, Logits = LogitsMode.LastPosition });
            var next = Sample(output.Logits!.select(1, 0), joining);
            var firsts = joining.Select((sequence, row) => (sequence.Id, Accept(sequence, next[row]))).ToList();
            Join(joining, prompts.Select(p => p.PromptTokenIds.Count).ToList(), joiner);
            return firsts;
        }
        finally
        {
            joiner.Dispose();
        }
    }

    private void Check(IReadOnlyList<int> promptTokenIds, SequenceOptions options)
    {
        options.Validate();
        if (promptTokenIds.Count == 0) throw new ArgumentException("A prompt needs at least one token.", nameof(promptTokenIds));
        if (promptTokenIds.Count + options.MaxNewTokens > MaxSequenceLength)
            throw new ArgumentException($"{promptTokenIds.Count} prompt tokens plus {options.MaxNewTokens} new ones exceed the model's {MaxSequenceLength} positions.");
        var vocabulary = _model.Config.VocabSize;
        if (promptTokenIds.Any(id => id < 0 || id >= vocabulary))
            throw new ArgumentException($"Prompt token ids must be in [0, {vocabulary}).", nameof(promptTokenIds));
    }

    /// <summary>One decode step: a token (or the end) for every running sequence; finished sequences leave the batch.</summary>
    public IReadOnlyList<DecodedToken> Step()
    {
        if (_running.Count == 0) return [];
        var cache = _cache!;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var device = _model.Device;
        var input = tensor(_running.Select(s => (long)s.LastToken).ToArray(), [_running.Count, 1], ScalarType.Int64, device);
        // Row r holds real tokens from its start column on; the new token goes into column Length.
        var starts = tensor(_running.Select(s => (long)s.StartColumn).ToArray(), [_running.Count, 1], ScalarType.Int64, device);
        var mask = arange(cache.Length + 1, ScalarType.Int64, device).unsqueeze(0).ge(starts);
        using var output = _model.Forward(input, new DecoderForwardOptions { AttentionMask = mask, Cache = cache, Logits = LogitsMode.LastPosition });
        var next = Sample(output.Logits!.select(1, 0), _running);

        var tokens = new DecodedToken[_running.Count];
        for (var row = 0; row < _running.Count; row++) tokens[row] = Accept(_running[row], next[row]);
        Leave(_running.Where(s => s.Finished).ToList());
        return tokens;
    }

    /// <summary>Takes a sequence out of the batch (its caller went away); unknown ids are ignored.</summary>
    public void Remove(long sequenceId) => Leave(_running.Where(s => s.Id == sequenceId).ToList());

    /// <summary>Records the sampled token: the end (stop token or limit), or a token to emit and feed to the next step.</summary>
    private static DecodedToken Accept(Sequence sequence, int token)
    {
        if (sequence.Options.StopTokenIds.Contains(token))
        {
            sequence.Finished = true;
            return new DecodedToken(sequence.Id, null, FinishReason.Stop);
        }
        sequence.Generated++;
        sequence.LastToken = token;
        var atLimit = sequence.Generated >= sequence.Options.MaxNewTokens;
        sequence.Finished = atLimit;
        return new DecodedToken(sequence.Id, token, atLimit ? FinishReason.Length : null);
    }

    /// <summary>
    /// Greedy rows in one argmax; each sampling row draws from its distribution with its own seeded random source
    /// (on the CPU), so its tokens do not depend on the batch or the device.
    /// </summary>
    private static int[] Sample(Tensor logits, IReadOnlyList<Sequence> rows)
    {
        var next = logits.argmax(-1).cpu().data<long>().Select(t => (int)t).ToArray();
        for (var row = 0; row < rows.Count; row++)
        {
            if (rows[row].Sampler is not { } random) continue;
            var options = rows[row].Options;
            var probabilities = TokenSampler.Probabilities(logits.narrow(0, row, 1), options.Temperature, options.TopP, topK: 0).cpu().data<float>().ToArray();
            next[row] = Draw(probabilities, random);
        }
        return next;
    }

    private static int Draw(float[] probabilities, Random random)
    {
        var target = random.NextDouble() * probabilities.Sum();
        var cumulative = 0.0;
        for (var token = 0; token < probabilities.Length; token++)
        {
            cumulative += probabilities[token];
            if (cumulative > target && probabilities[token] > 0) return token;
        }
        return Array.FindLastIndex(probabilities, p => p > 0);
    }

    /// <summary>Joins the prefilled sequences that did not end at their first token; <paramref name="joiner"/> holds one row each.</summary>
    private void Join(IReadOnlyList<Sequence> prefilled, IReadOnlyList<int> promptLengths, KvCache joiner)
    {
        var joinerRows = Enumerable.Range(0, prefilled.Count).Where(row => !prefilled[row].Finished).ToList();
        if (joinerRows.Count == 0) return;
        var joining = joinerRows.Select(row => prefilled[row]).ToList();
        var kept = _running.Select(s => (long)s.Row).ToList();
        var drop = _running.Count > 0 ? _running.Min(s => s.StartColumn) : 0;
        _cache ??= new KvCache(_model.Config, 0, 1, _model.DType, _model.Device);
        var length = Math.Max(_cache.Length - drop, joiner.Length);
        var shift = _cache.Relayout(kept, drop, joiner, joinerRows.Select(row => (long)row).ToList(), Capacity(length, [.. _running, .. joining]));
        foreach (var running in _running) running.StartColumn += shift - drop;
        foreach (var row in joinerRows) prefilled[row].StartColumn = _cache.Length - promptLengths[row];
        _running.AddRange(joining);
        Renumber();
    }

    private void Leave(IReadOnlyList<Sequence> leaving)
    {
        if (leaving.Count == 0) return;
        foreach (var sequence in leaving)
        {
            _running.Remove(sequence);
        }
        if (_running.Count == 0)
        {
            _cache?.Dispose();
            _cache = null;
            return;
        }
        var cache = _cache!;
        var kept = _running.Select(s => (long)s.Row).ToList();
        var drop = _running.Min(s => s.StartColumn);
        cache.Relayout(kept, drop, null, [], Capacity(cache.Length - drop, _running));
        foreach (var running in _running) running.StartColumn -= drop;
        Renumber();
    }

    /// <summary>Room for every running sequence to reach its limit: the decoder never re-lays the cache between joins and leaves.</summary>
    private static int Capacity(int length, IEnumerable<Sequence> sequences) =>
        length + sequences.Max(s => s.Options.MaxNewTokens - s.Generated);

    private void Renumber()
    {
        for (var row = 0; row < _running.Count; row++) _running[row].Row = row;
    }

    public void Dispose()
    {
        _running.Clear();
        _cache?.Dispose();
        _cache = null;
        _model.train(_wasTraining);
    }

    private sealed class Sequence(long id, SequenceOptions options, Random? sampler)
    {
        public long Id { get; } = id;
        public SequenceOptions Options { get; } = options;
        public Random? Sampler { get; } = sampler;
        public int Generated { get; set; }
        public int LastToken { get; set; }
        public bool Finished { get; set; }
        public int StartColumn { get; set; }
        public int Row { get; set; }
    }
}
