namespace FineTuneService.Ml.Training;

/// <summary>
/// A hook into <see cref="SftTrainer"/>, used by the safety strategies. Strategies run in list order and must be
/// deterministic so that a resumed run behaves like an uninterrupted one. Strategy state is not part of the
/// checkpoint: on resume <see cref="BeforeTraining"/> runs again and <see cref="OnGradients"/> continues at the step
/// after the checkpoint, so state built up over earlier steps must be derivable from the step and the weights.
/// </summary>
public interface ITrainingStrategy
{
    /// <summary>
    /// Before the optimizer is built (also on resume). May set <c>requires_grad</c> (frozen parameters never enter the
    /// optimizer) and may add or change <see cref="TrainingContext.TrainingExamples"/>.
    /// </summary>
    void BeforeTraining(TrainingContext context) { }

    /// <summary>
    /// After backward and before clipping and the optimizer step; may rewrite the <c>.grad</c> of
    /// <see cref="TrainingContext.TrainableParameters"/> in place. Runs inside the step's dispose scope.
    /// </summary>
    void OnGradients(TrainingContext context, int step) { }

    /// <summary>After the last step of a completed run (not on cancel or pause); may change the weights.</summary>
    void AfterTraining(TrainingContext context) { }

    /// <summary>
    /// Name of the post-training step <see cref="AfterTraining"/> performs when it changes the weights ("antidote",
    /// "merge", …), or null when it leaves them as trained. The trainer reports each named step to
    /// <see cref="ITrainingObserver.OnStage"/> so callers can evaluate the model after it.
    /// </summary>
    string? PostTrainingStep => null;
}
