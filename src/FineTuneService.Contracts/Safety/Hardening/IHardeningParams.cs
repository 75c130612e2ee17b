namespace FineTuneService.Contracts.Safety.Hardening;

/// <summary>Parameters of one base-model hardening method (<see cref="HardeningMethods"/>); every field has a default.</summary>
public interface IHardeningParams
{
    /// <summary>Every bound the parameters break; the field is the snake_case wire name.</summary>
    IEnumerable<ParamError> Errors();
}
