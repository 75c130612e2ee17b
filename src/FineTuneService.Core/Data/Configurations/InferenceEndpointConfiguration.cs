using FineTuneService.Core.Domain;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

namespace FineTuneService.Core.Data.Configurations;

internal sealed class InferenceEndpointConfiguration : IEntityTypeConfiguration<InferenceEndpoint>
{
    public void Configure(EntityTypeBuilder<InferenceEndpoint> builder)
    {
        builder.ToTable("inference_endpoints");
        builder.HasKey(e => e.Id);
        builder.Property(e => e.Id).HasMaxLength(200);
        builder.Property(e => e.Url).HasMaxLength(500);
        builder.Property(e => e.AccessToken).HasMaxLength(100);
        builder.Property(e => e.Devices).HasMaxLength(200);
        builder.HasIndex(e => e.HeartbeatAt);
    }
}
