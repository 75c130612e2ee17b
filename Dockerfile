# syntax=docker/dockerfile:1.7
# Production images of FineTuneService (README, "Production"). Docker cannot run on the development machine, so no
# image has been built from this file; each stage's `dotnet publish` command was run there as written (README says
# exactly what was verified and what was not).
#
#   docker build --target api    -t registry.example.com/fts/api:1.4.0 .
#   docker build --target worker -t registry.example.com/fts/worker:1.4.0 --build-arg TORCH_BACKEND=cuda .   # GPU
#   docker build --target worker -t registry.example.com/fts/worker-cpu:1.4.0 .                              # CPU only
#   docker build --target cli    -t registry.example.com/fts/cli:1.4.0 .                                     # fts
#
# One build stage per host, so `--target api` never restores or publishes libtorch. TORCH_BACKEND selects the
# libtorch natives of the worker and the CLI through src/TorchNative.props: cpu (libtorch-cpu-linux-x64) or cuda
# (TorchSharp-cuda-linux, which carries the CUDA runtime libraries; the host needs only the NVIDIA driver and the
# NVIDIA container toolkit, and the container sees only the GPUs it is given: `--gpus`, or compose's reservations).

ARG DOTNET_VERSION=10.0

# ---- restore: project files only, so a source edit does not invalidate the package layers ---------------------
# (the "projects" stage keeps only *.csproj/*.props/*.targets; its output, and so the restore layers below, change
# only when one of those does).
FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION} AS projects
WORKDIR /src
COPY src/ src/
RUN find src -type f ! -name '*.csproj' ! -name '*.props' ! -name '*.targets' -delete && find src -type d -empty -delete

FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION} AS restore
WORKDIR /src
COPY global.json Directory.Build.props Directory.Build.targets Directory.Packages.props ./
COPY --from=projects /src/src/ src/

# ---- api: ASP.NET Core only, no libtorch --------------------------------------------------------------------------
FROM restore AS build-api
RUN --mount=type=cache,id=nuget,target=/root/.nuget/packages \
    dotnet restore src/FineTuneService.Api/FineTuneService.Api.csproj
COPY src/ src/
RUN --mount=type=cache,id=nuget,target=/root/.nuget/packages \
    dotnet publish src/FineTuneService.Api/FineTuneService.Api.csproj -c Release --no-restore -o /out

# ---- worker: the training host, with the libtorch of TORCH_BACKEND -------------------------------------------------
FROM restore AS build-worker
ARG TORCH_BACKEND=cpu
RUN --mount=type=cache,id=nuget,target=/root/.nuget/packages \
    dotnet restore src/FineTuneService.Worker/FineTuneService.Worker.csproj -p:TorchBackend=${TORCH_BACKEND}
COPY src/ src/
RUN --mount=type=cache,id=nuget,target=/root/.nuget/packages \
    dotnet publish src/FineTuneService.Worker/FineTuneService.Worker.csproj -c Release --no-restore -o /out \
      -p:TorchBackend=${TORCH_BACKEND}

# ---- cli: fts (bootstrap build, safety layer location, benchmarks) -------------------------------------------------
FROM restore AS build-cli
ARG TORCH_BACKEND=cpu
RUN --mount=type=cache,id=nuget,target=/root/.nuget/packages \
    dotnet restore src/FineTuneService.Cli/FineTuneService.Cli.csproj -p:TorchBackend=${TORCH_BACKEND}
COPY src/ src/
RUN --mount=type=cache,id=nuget,target=/root/.nuget/packages \
    dotnet publish src/FineTuneService.Cli/FineTuneService.Cli.csproj -c Release --no-restore -o /out \
      -p:TorchBackend=${TORCH_BACKEND}

# ---- runtime images ------------------------------------------------------------------------------------------------
FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION} AS runtime
# JSON console logs (one object per line, scopes included) for log collectors; ASPNETCORE_HTTP_PORTS=8080 and the
# non-root user "app" come from the base image.
ENV DOTNET_ENVIRONMENT=Production \
    ASPNETCORE_ENVIRONMENT=Production \
    Logging__Console__FormatterName=json \
    Logging__Console__FormatterOptions__IncludeScopes=true \
    Logging__Console__FormatterOptions__TimestampFormat="yyyy-MM-ddTHH:mm:ss.fffZ" \
    Logging__Console__FormatterOptions__UseUtcTimestamp=true
WORKDIR /app

FROM runtime AS api
COPY --from=build-api /out .
# The shipped bootstrap model. A named volume mounted at /models starts as a copy of it, and operators add more
# Hugging Face folders there (the cli image writes to the same volume); the API imports changed folders at start.
COPY --chown=app models/ /models/
ENV Models__Directory=/models
EXPOSE 8080
USER app
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["dotnet", "FineTuneService.Api.dll"]

# The worker serves /healthz, /readyz (and /metrics when Telemetry__Prometheus=true) on 8080, and chat completions
# for the API on Inference__Listen (compose: 8090). No NVIDIA_* variables
# here: a container sees the GPUs its runtime gives it, never all of a node's by default.
FROM runtime AS worker
COPY --from=build-worker /out .
ENV Worker__ModelCacheDirectory=/var/cache/fts
RUN mkdir -p /var/cache/fts && chown app /var/cache/fts
VOLUME /var/cache/fts
EXPOSE 8080 8090
USER app
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3 | grep -q ' 200 '"]
# Stop with at least Worker__ShutdownTimeout of grace (docker stop -t / --stop-timeout, compose stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["dotnet", "FineTuneService.Worker.dll"]

FROM runtime AS cli
COPY --from=build-cli /out .
USER app
WORKDIR /models
ENTRYPOINT ["dotnet", "/app/fts.dll"]
CMD ["help"]
