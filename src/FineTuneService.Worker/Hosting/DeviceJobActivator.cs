using Hangfire;
using Microsoft.Extensions.DependencyInjection;

namespace FineTuneService.Worker.Hosting;

/// <summary>
/// Hangfire activator of one device server: each job gets its own DI scope in which <see cref="CurrentWorkerSlot"/>
/// names this server's device, so the same <c>IFineTuneJobRunner</c> trains on whichever device dequeued it.
/// </summary>
internal sealed class DeviceJobActivator(IServiceScopeFactory scopes, WorkerSlot slot) : JobActivator
{
    public override object ActivateJob(Type jobType) =>
        throw new InvalidOperationException("Device servers activate jobs inside a scope only.");

    public override JobActivatorScope BeginScope(JobActivatorContext context)
    {
        var scope = scopes.CreateAsyncScope();
        scope.ServiceProvider.GetRequiredService<CurrentWorkerSlot>().Assign(slot);
        return new Scope(scope);
    }

    private sealed class Scope(AsyncServiceScope scope) : JobActivatorScope
    {
        public override object Resolve(Type type) => ActivatorUtilities.GetServiceOrCreateInstance(scope.ServiceProvider, type);

        public override void DisposeScope() => scope.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }
}
