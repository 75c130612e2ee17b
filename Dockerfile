# syntax=docker/dockerfile:1
# Production images of FineTuneService (see README, "Production topology"). Not built in this repository's CI:
# the development machine has no Docker, so this file is kept correct on paper.
#
#   docker build --target api    -t fts-api .
#   docker build --target worker -t fts-worker --build-arg TORCH_BACKEND=cuda .   # GPU worker
#   docker build --target worker -t fts-worker-cpu .                               # CPU-only worker
#
# TORCH_BACKEND selects the libtorch natives through src/TorchNative.props: cpu (libtorch-cpu-linux-x64) or
# cuda (TorchSharp-cuda-linux, which carries the CUDA runtime libraries; the host only needs the NVIDIA driver and
# the NVIDIA container toolkit). The API image never contains libtorch.

ARG DOTNET_VERSION=10.0

FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION} AS build
ARG TORCH_BACKEND=cpu
WORKDIR /src
COPY global.json Directory.Build.props Directory.Build.targets Directory.Packages.props FineTuneService.sln ./
COPY src/ src/
# Host build outputs must not leak into the image build (stale project.assets.json would point at host paths).
RUN find src -type d \( -name bin -o -name obj \) -prune -exec rm -rf {} +
RUN dotnet publish src/FineTuneService.Api/FineTuneService.Api.csproj -c Release -o /out/api
RUN dotnet publish src/FineTuneService.Worker/FineTuneService.Worker.csproj -c Release -o /out/worker \
      -p:TorchBackend=${TORCH_BACKEND}

FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION} AS api
WORKDIR /app
COPY --from=build /out/api .
ENV ASPNETCORE_HTTP_PORTS=8080 \
    ASPNETCORE_ENVIRONMENT=Production
EXPOSE 8080
USER app
ENTRYPOINT ["dotnet", "FineTuneService.Api.dll"]

# The worker host is not a web app, but Core shares ASP.NET Core abstractions, hence the aspnet runtime image.
FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION} AS worker
WORKDIR /app
COPY --from=build /out/worker .
ENV DOTNET_ENVIRONMENT=Production \
    Worker__ModelCacheDirectory=/var/cache/fts \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
RUN mkdir -p /var/cache/fts && chown app /var/cache/fts
VOLUME /var/cache/fts
USER app
ENTRYPOINT ["dotnet", "FineTuneService.Worker.dll"]
