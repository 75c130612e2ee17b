using FineTuneService.Contracts.Safety;
using FineTuneService.Ml.Safety.Strategies.ProjectedGradients;
using TorchSharp.Modules;
using static FineTuneService.Ml.Tests.Safety.SafetyTestTensors;
using static TorchSharp.torch;

namespace FineTuneService.Ml.Tests.Safety;

public sealed class GradientProjectorTests
{
    /// <summary>Two-layer net, a task regression loss and per-sample "safety" losses on other targets.</summary>
    private sealed class TinyProblem
    {
        private readonly Tensor _taskX, _taskY, _safetyX, _safetyY;

        public TinyProblem(int seed)
        {
            var g = Seeded(seed);
            Parameters =
            [
                ("model.layers.0.mlp.up_proj.weight", new Parameter(Randn(g, 8, 6) * 0.5f)),
                ("model.layers.0.mlp.down_proj.weight", new Parameter(Randn(g, 3, 8) * 0.5f)),
                ("model.layers.0.mlp.down_proj.bias", new Parameter(Randn(g, 3) * 0.1f)),
            ];
            _taskX = Randn(g, 16, 6);
            _taskY = Randn(g, 16, 3);
            _safetyX = Randn(g, 5, 6);
            _safetyY = Randn(g, 5, 3);
        }

        public List<(string Name, Parameter Parameter)> Parameters { get; }

        private Tensor Forward(Tensor x) =>
            nn.functional.tanh(x.matmul(Parameters[0].Parameter.t())).matmul(Parameters[1].Parameter.t()) + Parameters[2].Parameter;

        public void TaskBackward()
        {
            foreach (var (_, p) in Parameters) p.grad?.zero_();
            nn.functional.mse_loss(Forward(_taskX), _taskY).backward();
        }

        public Tensor SafetyLoss(int i) => nn.functional.mse_loss(Forward(_safetyX[i].unsqueeze(0)), _safetyY[i].unsqueeze(0));

        public Tensor[] Grads() => Parameters.Select(p => p.Parameter.grad!.clone()).ToArray();
    }

    [Theory]
    [InlineData(ProjectedGradientsVariants.PcGrad)]
    [InlineData(ProjectedGradientsVariants.Config)]
    public void Pairwise_variants_leave_no_negative_inner_product_with_the_safety_gradient(string variant)
    {
        using var scope = NewDisposeScope();
        var problem = new TinyProblem(21);
        using var strategy = new GradientProjector(new ProjectedGradientsParams(variant, SafetySamples: 5), seed: 42);
        var edited = 0;
        for (var step = 0; step < 6; step++)
        {
            using var stepScope = NewDisposeScope(); // as in the trainer: subspaces must outlive the step's scope
            problem.TaskBackward();
            var before = problem.Grads();
            var report = strategy.OnGradients(step, problem.Parameters, problem.SafetyLoss);
            edited += report.Conflicting;
            for (var i = 0; i < problem.Parameters.Count; i++)
            {
                var s = strategy.Subspaces[problem.Parameters[i].Name].SafetyGradient;
                var after = problem.Parameters[i].Parameter.grad!;
                if (GradientSurgery.Inner(before[i], s) < 0) Assert.True(GradientSurgery.Inner(after, s) >= -1e-6, $"{problem.Parameters[i].Name}: still conflicting");
                else Assert.True(BitEqual(before[i], after), "aligned gradients are left alone");
            }
            using (no_grad()) foreach (var (_, p) in problem.Parameters) p.sub_(p.grad! * 0.5f);
        }
        Assert.True(edited > 0, "the problem is built to conflict at least once");
    }

    [Fact]
    public void Subspace_variant_removes_the_in_subspace_component_of_conflicting_gradients()
    {
        using var scope = NewDisposeScope();
        var problem = new TinyProblem(22);
        using var strategy = new GradientProjector(new ProjectedGradientsParams(ProjectedGradientsVariants.Subspace, Rank: 2, SafetySamples: 5), seed: 42);
        var edited = 0;
        for (var step = 0; step < 6; step++)
        {
            using var stepScope = NewDisposeScope(); // as in the trainer: subspaces must outlive the step's scope
            problem.TaskBackward();
            var before = problem.Grads();
            edited += strategy.OnGradients(step, problem.Parameters, problem.SafetyLoss).Conflicting;
            for (var i = 0; i < problem.Parameters.Count; i++)
            {
                var subspace = strategy.Subspaces[problem.Parameters[i].Name];
                var after = problem.Parameters[i].Parameter.grad!;
                if (GradientSurgery.Inner(before[i], subspace.SafetyGradient) < 0)
                    Assert.InRange(GradientSurgery.Inner(after, subspace.Project(subspace.SafetyGradient)), -1e-5, 1e-5);
                else
                    Assert.True(BitEqual(before[i], after));
            }
            using (no_grad()) foreach (var (_, p) in problem.Parameters) p.sub_(p.grad! * 0.5f);
        }
        Assert.True(edited > 0);
    }

    [Fact]
    public void Safety_gradients_are_taken_without_touching_the_task_gradients()
    {
        using var scope = NewDisposeScope();
        var problem = new TinyProblem(23);
        problem.TaskBackward();
        var before = problem.Grads();
        var perSample = SafetyGradients.PerSample(problem.Parameters.Select(p => p.Parameter).ToArray(), problem.SafetyLoss, 3);
        Assert.Equal(3, perSample.Count);
        for (var i = 0; i < before.Length; i++) Assert.True(BitEqual(before[i], problem.Parameters[i].Parameter.grad!));
        // And they are the real per-sample gradients.
        foreach (var (_, p) in problem.Parameters) p.grad!.zero_();
        problem.SafetyLoss(1).backward();
        Assert.True(perSample[1][0].allclose(problem.Parameters[0].Parameter.grad!, atol: 1e-6));
    }

    [Fact]
    public void Mean_safety_gradient_from_one_backward_equals_the_mean_of_the_per_sample_gradients()
    {
        using var scope = NewDisposeScope();
        var problem = new TinyProblem(25);
        var parameters = problem.Parameters.Select(p => p.Parameter).ToArray();
        var perSample = SafetyGradients.PerSample(parameters, problem.SafetyLoss, 4);
        var mean = SafetyGradients.Mean(parameters, problem.SafetyLoss, 4);
        for (var j = 0; j < parameters.Length; j++)
            Assert.True(mean[j].allclose(stack(perSample.Select(s => s[j]).ToArray()).mean([0]), atol: 1e-6));
    }

    [Fact]
    public void Refreshes_on_the_configured_cadence_and_is_deterministic_from_the_seed()
    {
        using var scope = NewDisposeScope();
        Tensor[] RunThreeSteps(out IReadOnlyList<bool> refreshed)
        {
            var problem = new TinyProblem(24);
            using var strategy = new GradientProjector(new ProjectedGradientsParams(Rank: 2, RefreshEvery: 2, SafetySamples: 4), seed: 7);
            var flags = new List<bool>();
            for (var step = 1; step <= 5; step++)
            {
                problem.TaskBackward();
                flags.Add(strategy.OnGradients(step, problem.Parameters, problem.SafetyLoss).Refreshed);
                using (no_grad()) foreach (var (_, p) in problem.Parameters) p.sub_(p.grad! * 0.5f);
            }
            refreshed = flags;
            return problem.Parameters.Select(p => p.Parameter.detach().clone()).ToArray();
        }

        var first = RunThreeSteps(out var refreshed);
        var second = RunThreeSteps(out _);
        Assert.Equal(new[] { true, true, false, true, false }, refreshed);
        for (var i = 0; i < first.Length; i++) Assert.True(BitEqual(first[i], second[i]));
    }

    [Fact]
    public void Rejects_unknown_variants_and_bad_numbers()
    {
        Assert.Throws<ArgumentException>(() => new GradientProjector(new ProjectedGradientsParams("orthogonal"), 1));
        Assert.Throws<ArgumentException>(() => new GradientProjector(new ProjectedGradientsParams(Rank: 0), 1));
        Assert.Throws<ArgumentException>(() => new GradientProjector(new ProjectedGradientsParams(RefreshEvery: 0), 1));
    }
}
