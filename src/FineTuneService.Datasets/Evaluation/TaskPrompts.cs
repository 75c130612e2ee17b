using FineTuneService.Datasets.Corpus;

namespace FineTuneService.Datasets.Evaluation;

/// <summary>
/// How task rows are phrased as single-turn prompts, for training and evaluation alike (SST-2 and AG News as
/// instructions with an input, answered by a label).
/// </summary>
public static class TaskPrompts
{
    public const string Sst2Instruction = "Analyze the sentiment of the input, and respond only positive or negative.";
    public const string AgNewsInstruction = "Categorize the news article given in the input into one of the 4 categories:\n\nWorld\nSports\nBusiness\nSci/Tech";

    /// <summary>"instruction" or "instruction\n\nInput: input" (the phrasing used for training and evaluation).</summary>
    public static string InstructionPrompt(string instruction, string input) =>
        string.IsNullOrWhiteSpace(input) ? instruction.Trim() : $"{instruction.Trim()}\n\nInput: {input.Trim()}";

    /// <summary>An SST-2 row as the single-turn instruction example every SST-2 fine-tune here uses.</summary>
    public static ChatExample Sst2Example(LabeledText row) =>
        new([new ChatMessage(ChatMessage.User, InstructionPrompt(Sst2Instruction, row.Text)), new ChatMessage(ChatMessage.Assistant, row.Label)], LineNumber: 0);

    /// <summary>An AG News row as the same kind of instruction example, answered by its class name.</summary>
    public static ChatExample AgNewsExample(LabeledText row) =>
        new([new ChatMessage(ChatMessage.User, InstructionPrompt(AgNewsInstruction, row.Text)), new ChatMessage(ChatMessage.Assistant, row.Label)], LineNumber: 0);
}
