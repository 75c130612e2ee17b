using Hangfire;
using Microsoft.Extensions.DependencyInjection;

namespace FineTuneService.Worker.Hosting;

/// <summary>
/// Hangfire activator of the worker's servers: each job gets its own DI scope, as ASP.NET Core's Hangfire activator
/// does. On a device server <see cref="CurrentWorkerSlot"/> names that server's device in the scope, so the same
/// <c>IFineTuneJobRunner</c> trains on whichever device dequeued it; the screening server has no device.
/// </summary>
internal sealed class ScopedJobActivator(IServiceScopeFactory scopes, WorkerSlot? slot = null) : JobActivator
{
    public override object ActivateJob(Type jobType) =>
        throw new InvalidOperationException("Worker servers activate jobs inside a scope only.");

    public override JobActivatorScope BeginScope(JobActivatorContext context)
    {
        var scope = scopes.CreateAsyncScope();
        if (slot is not null) scope.ServiceProvider.GetRequiredService<CurrentWorkerSlot>().Assign(slot);
        return new Scope(scope);
    }

    private sealed class Scope(AsyncServiceScope scope) : JobActivatorScope
    {
        public override object Resolve(Type type) => ActivatorUtilities.GetServiceOrCreateInstance(scope.ServiceProvider, type);

        public override void DisposeScope() => scope.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }
}
