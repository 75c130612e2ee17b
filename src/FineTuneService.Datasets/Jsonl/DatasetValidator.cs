using System.Text;
using FineTuneService.Datasets.Sft;
using static FineTuneService.Datasets.Jsonl.DatasetErrorCodes;

namespace FineTuneService.Datasets.Jsonl;

/// <summary>
/// Validates a fine-tuning JSONL file in one streaming pass: row format, roles and content, file limits and token
/// lengths. Problems are reported with 1-based line numbers; validation never throws for bad content.
/// </summary>
public static class DatasetValidator
{
    /// <summary>
    /// Validates <paramref name="stream"/> (read to the end or to the first hard limit; not disposed).
    /// With a tokenizer, examples are counted through its chat template exactly as training will encode them;
    /// without one, counts are estimated (UTF-8 bytes / 4 plus a few tokens per message).
    /// </summary>
    public static async Task<DatasetValidationReport> ValidateAsync(
        Stream stream, ITextTokenizer? tokenizer, DatasetLimits? limits = null, CancellationToken cancellationToken = default)
    {
        limits ??= DatasetLimits.Default;
        var state = new ValidationState(limits, tokenizer is null ? null : new ChatExampleEncoder(tokenizer));

        if (stream.CanSeek && stream.Length - stream.Position > limits.MaxFileBytes)
        {
            state.Add(new DatasetIssue(FileTooLarge, $"The file has {stream.Length - stream.Position} bytes; the limit is {limits.MaxFileBytes}."));
            return state.Report(bytes: stream.Length - stream.Position, lineCount: 0, checkMinimum: false);
        }

        var lines = new JsonlLineReader(stream, limits.MaxLineBytes);
        int lineCount = 0;
        await foreach (var line in lines.ReadAsync(cancellationToken))
        {
            lineCount = line.Number;
            if (lines.BytesRead > limits.MaxFileBytes)
            {
                state.Add(new DatasetIssue(FileTooLarge, $"The file is larger than the limit of {limits.MaxFileBytes} bytes.", line.Number));
                return state.Report(lines.BytesRead, lineCount, checkMinimum: false);
            }

            if (line.Number > limits.MaxLines)
            {
                state.Add(new DatasetIssue(TooManyLines, $"The file has more than {limits.MaxLines} lines.", line.Number));
                return state.Report(lines.BytesRead, lineCount, checkMinimum: false);
            }

            if (line.Issue(limits.MaxLineBytes) is { } unreadable) state.Add(unreadable);
            else state.ValidateLine(line.Text!, line.Number);
        }

        return state.Report(lines.BytesRead, lineCount, checkMinimum: true);
    }

    private sealed class ValidationState(DatasetLimits limits, ChatExampleEncoder? encoder)
    {
        private readonly List<DatasetIssue> _errors = [];
        private readonly List<DatasetIssue> _rowIssues = [];
        private readonly List<int> _tokenCounts = [];
        private DatasetFormat _format = DatasetFormat.Unknown;
        private int _formatLine;
        private int _errorCount;
        private int _examples;
        private long _totalTokens;
        private long _trainableTokens;

        public void Add(DatasetIssue issue)
        {
            _errorCount++;
            if (_errors.Count < limits.MaxErrorsReported)
                _errors.Add(issue);
        }

        public void ValidateLine(string text, int lineNumber)
        {
            if (string.IsNullOrWhiteSpace(text))
            {
                if (!limits.AllowEmptyLines)
                    Add(new DatasetIssue(EmptyLine, "Empty line.", lineNumber));
                return;
            }

            _rowIssues.Clear();
            var (format, chat, pair) = ChatJsonlRow.Parse(text, lineNumber, _rowIssues);
            if (format != DatasetFormat.Unknown)
            {
                if (_format == DatasetFormat.Unknown)
                    (_format, _formatLine) = (format, lineNumber);
                else if (format != _format)
                {
                    Add(new DatasetIssue(InvalidFormat, $"Mixed formats: this row is {Name(format)} but line {_formatLine} is {Name(_format)}.", lineNumber));
                    return;
                }
            }

            foreach (var issue in _rowIssues)
                Add(issue);
            if (chat is null && pair is null)
                return;

            // A pair trains on both answers; its longer side must fit the context.
            var (tokens, trainable) = chat is not null ? Count(chat) : Count(pair!.Chosen);
            if (pair is not null)
            {
                var rejected = Count(pair.Rejected);
                (tokens, trainable) = (Math.Max(tokens, rejected.Tokens), trainable + rejected.Trainable);
            }
            if (tokens > limits.MaxTokensPerExample)
            {
                var what = pair is null ? "The example has" : "The longer side of the pair has";
                Add(new DatasetIssue(ExampleTooLong, $"{what} {tokens} tokens; the limit is {limits.MaxTokensPerExample}.", lineNumber));
                return;
            }

            _examples++;
            _tokenCounts.Add(tokens);
            _totalTokens += tokens;
            _trainableTokens += trainable;
        }

        public DatasetValidationReport Report(long bytes, int lineCount, bool checkMinimum)
        {
            if (checkMinimum && _examples < limits.MinExamples)
            {
                var what = _format == DatasetFormat.Preference ? "preference pairs" : "examples";
                Add(new DatasetIssue(TooFewExamples, $"The file has {_examples} valid {what}; at least {limits.MinExamples} are required."));
            }

            return new DatasetValidationReport
            {
                Format = _format,
                ExampleCount = _examples,
                LineCount = lineCount,
                ByteCount = bytes,
                TotalTokens = _totalTokens,
                TrainableTokens = _trainableTokens,
                TokenStats = TokenStatistics.From(_tokenCounts),
                TokenCountsEstimated = encoder is null,
                ErrorCount = _errorCount,
                Errors = _errors.ToArray(),
            };
        }

        private (int Tokens, int Trainable) Count(ChatExample example)
        {
            if (encoder is null)
            {
                int tokens = 0, trainable = 0;
                foreach (var message in example.Messages)
                {
                    int estimate = EstimateTokens(message.Content);
                    tokens += estimate + EstimatedOverheadPerMessage;
                    if (message.IsTrainable)
                        trainable += estimate + 1;
                }

                return (tokens, trainable);
            }

            var encoded = encoder.Encode(example);
            return (encoded.Length, encoded.TrainableTokenCount);
        }

        private static string Name(DatasetFormat format) => format switch
        {
            DatasetFormat.Chat => "chat (messages)",
            DatasetFormat.Preference => "preference (input/preferred_output)",
            _ => "prompt/completion",
        };
    }

    /// <summary>Control tokens per ChatML message: &lt;|im_start|&gt;, role, newline, &lt;|im_end|&gt;, newline.</summary>
    private const int EstimatedOverheadPerMessage = 5;

    private static int EstimateTokens(string text) => (Encoding.UTF8.GetByteCount(text) + 3) / 4;
}
