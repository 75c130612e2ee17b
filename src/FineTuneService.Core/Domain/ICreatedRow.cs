namespace FineTuneService.Core.Domain;

/// <summary>A row the API lists in creation order, paged by an id cursor (files, jobs, safety evaluations).</summary>
public interface ICreatedRow
{
    string Id { get; }
    DateTime CreatedAt { get; }
}
