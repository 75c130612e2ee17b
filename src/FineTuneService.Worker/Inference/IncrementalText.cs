using FineTuneService.Datasets;

namespace FineTuneService.Worker.Inference;

/// <summary>
/// Turns generated tokens into text deltas for streaming: text is released once it is final, that is, neither the
/// start of a multi-byte character still being decoded (a trailing U+FFFD) nor a possible start of a stop sequence.
/// A stop sequence ends the text before it.
/// </summary>
public sealed class IncrementalText(ITextTokenizer tokenizer, IReadOnlyList<string> stopSequences)
{
    private readonly List<int> _ids = [];
    private string _text = "";
    private int _released;

    /// <summary>True once a stop sequence was produced: the text ends before it.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Adds a token; returns the text that became final (possibly empty).</summary>
    public string Add(int tokenId)
    {
        if (Stopped) return "";
        _ids.Add(tokenId);
        _text = tokenizer.Decode(_ids);

        var longest = stopSequences.Count == 0 ? 0 : stopSequences.Max(s => s.Length);
        var searchFrom = Math.Max(0, _released - longest + 1);
        var stopAt = stopSequences.Select(s => _text.IndexOf(s, searchFrom, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(-1).Min();
        if (stopAt >= 0)
        {
            Stopped = true;
            return Release(Math.Max(stopAt, _released));
        }

        var end = _text.Length;
        while (end > _released && _text[end - 1] == '\uFFFD') end--;
        end -= HeldForStop(end);
        return Release(end);
    }

    /// <summary>The rest of the text once generation ended without a stop sequence.</summary>
    public string Flush() => Stopped ? "" : Release(_text.Length);

    private string Release(int end)
    {
        if (end <= _released) return "";
        var delta = _text[_released..end];
        _released = end;
        return delta;
    }

    /// <summary>Length of the longest tail of the text before <paramref name="end"/> that starts a stop sequence.</summary>
    private int HeldForStop(int end)
    {
        var held = 0;
        foreach (var stop in stopSequences)
            for (var length = Math.Min(stop.Length - 1, end - _released); length > held; length--)
                if (string.CompareOrdinal(_text, end - length, stop, 0, length) == 0)
                {
                    held = length;
                    break;
                }
        return held;
    }
}
