using System.Runtime.CompilerServices;
using System.Threading.Channels;
using FineTuneService.Ml.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace FineTuneService.Ml.Inference;

/// <summary>
/// Continuous batching over one loaded model: a dedicated thread drives a <see cref="BatchDecoder"/>; requests wait in
/// a queue and join the running batch between decode steps (up to <c>maxBatchSize</c> sequences; those that arrived
/// during one step are prefilled together), each step's tokens go straight to their callers, and a caller that goes
/// away leaves the batch at the next step.
/// </summary>
public sealed class ContinuousBatcher : IDisposable
{
    private readonly DecoderLM _model;
    private readonly int _maxBatchSize;
    private readonly ILogger _logger;
    private readonly Channel<Pending> _incoming = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _thread;
    private int _waiting;
    private int _running;

    public ContinuousBatcher(DecoderLM model, int maxBatchSize, string name, ILogger? logger = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBatchSize);
        _model = model;
        _maxBatchSize = maxBatchSize;
        _logger = logger ?? NullLogger.Instance;
        _thread = new Thread(Run) { IsBackground = true, Name = $"batcher {name}" };
        _thread.Start();
    }

    /// <summary>Sequences waiting to join plus those decoding.</summary>
    public int Load => Volatile.Read(ref _waiting) + Volatile.Read(ref _running);

    /// <summary>The longest sequence (prompt and new tokens) the model's positions allow.</summary>
    public int MaxSequenceLength => _model.Config.MaxPositionEmbeddings;

    /// <summary>
    /// Decodes one sequence: its tokens as they are produced, the last item carrying the finish reason. Stopping the
    /// enumeration (or <paramref name="cancellationToken"/>) takes the sequence out of the batch.
    /// </summary>
    /// <exception cref="ArgumentException">The prompt is empty, has ids outside the vocabulary, or is too long with its limit.</exception>
    public async IAsyncEnumerable<DecodedToken> GenerateAsync(IReadOnlyList<int> promptTokenIds, SequenceOptions options,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        options.Validate();
        var pending = new Pending(promptTokenIds, options);
        Interlocked.Increment(ref _waiting);
        if (!_incoming.Writer.TryWrite(pending))
        {
            Interlocked.Decrement(ref _waiting);
            throw new ObjectDisposedException(nameof(ContinuousBatcher));
        }
        try
        {
            await foreach (var token in pending.Output.Reader.ReadAllAsync(cancellationToken))
            {
                yield return token;
                if (token.Finished is not null) yield break;
            }
        }
        finally
        {
            pending.Abandon();
        }
    }

    private void Run()
    {
        var decoder = new BatchDecoder(_model);
        var active = new Dictionary<long, Pending>();
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                if (active.Count == 0 && !WaitForWork()) break;
                foreach (var gone in active.Where(a => a.Value.Abandoned).ToList())
                {
                    decoder.Remove(gone.Key);
                    active.Remove(gone.Key);
                }
                var joining = new List<Pending>();
                while (active.Count + joining.Count < _maxBatchSize && _incoming.Reader.TryRead(out var pending))
                {
                    Interlocked.Decrement(ref _waiting);
                    if (!pending.Abandoned) joining.Add(pending);
                }
                if (joining.Count > 0) Join(decoder, active, joining);
                if (active.Count == 0) continue;

                IReadOnlyList<DecodedToken> tokens;
                try
                {
                    tokens = decoder.Step();
                }
                catch (Exception e)
                {
                    // A failed step (out of memory, a device fault) fails the batch, not the batcher.
                    _logger.LogError(e, "Decode step failed; failing {Count} running sequences", active.Count);
                    foreach (var failed in active.Values) failed.Output.Writer.TryComplete(e);
                    active.Clear();
                    decoder.Dispose();
                    decoder = new BatchDecoder(_model);
                    continue;
                }
                foreach (var token in tokens)
                {
                    var owner = active[token.SequenceId];
                    owner.Output.Writer.TryWrite(token);
                    if (token.Finished is null) continue;
                    owner.Output.Writer.TryComplete();
                    active.Remove(token.SequenceId);
                }
                Volatile.Write(ref _running, active.Count);
            }
        }
        finally
        {
            var stopped = new ObjectDisposedException(nameof(ContinuousBatcher));
            foreach (var pending in active.Values) pending.Output.Writer.TryComplete(stopped);
            while (_incoming.Reader.TryRead(out var waiting)) waiting.Output.Writer.TryComplete(stopped);
            decoder.Dispose();
        }
    }

    /// <summary>Prefills everything that arrived since the last step together; a prompt the decoder rejects fails alone.</summary>
    private void Join(BatchDecoder decoder, Dictionary<long, Pending> active, IReadOnlyList<Pending> joining)
    {
        try
        {
            var firsts = decoder.AddRange(joining.Select(p => (p.Prompt, p.Options)).ToList());
            for (var i = 0; i < joining.Count; i++) Started(active, joining[i], firsts[i].SequenceId, firsts[i].First);
        }
        catch (ArgumentException) when (joining.Count > 1)
        {
            foreach (var pending in joining) Join(decoder, active, [pending]);
        }
        catch (Exception e)
        {
            foreach (var pending in joining) pending.Output.Writer.TryComplete(e);
        }
        Volatile.Write(ref _running, active.Count);
    }

    private static void Started(Dictionary<long, Pending> active, Pending pending, long id, DecodedToken first)
    {
        pending.Output.Writer.TryWrite(first);
        if (first.Finished is null) active[id] = pending;
        else pending.Output.Writer.TryComplete();
    }

    /// <summary>Blocks this thread until a request arrives; false when the batcher is stopping.</summary>
    private bool WaitForWork()
    {
        try
        {
            return _incoming.Reader.WaitToReadAsync(_stop.Token).AsTask().GetAwaiter().GetResult();
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Stops the thread after the current step; sequences still running end with <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        if (_stop.IsCancellationRequested) return;
        _incoming.Writer.TryComplete();
        _stop.Cancel();
        _thread.Join();
        _stop.Dispose();
    }

    private sealed class Pending(IReadOnlyList<int> prompt, SequenceOptions options)
    {
        private volatile bool _abandoned;

        public IReadOnlyList<int> Prompt { get; } = prompt;
        public SequenceOptions Options { get; } = options;
        public Channel<DecodedToken> Output { get; } = Channel.CreateUnbounded<DecodedToken>(new UnboundedChannelOptions { SingleWriter = true, SingleReader = true });
        public bool Abandoned => _abandoned;

        public void Abandon() => _abandoned = true;
    }
}
