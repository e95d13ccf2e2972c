# A GPU host: Silo.Gpu on NVIDIA's CUDA 13 runtime with cuDNN 9 (what ONNX Runtime's CUDA provider 1.31 loads),
# plus the ASP.NET Core runtime (the Orleans dashboard's per-silo part needs it).
# Build from the repository root: docker build -f docker/silo.Dockerfile -t orleansgpu-silo .

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish Silo.Gpu -c Release -r linux-x64 --self-contained false -p:OnnxRuntimeFlavor=cuda -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS dotnet

FROM nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04
RUN apt-get update \
 && apt-get install -y --no-install-recommends libicu74 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=dotnet /usr/share/dotnet /usr/share/dotnet
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
ENV DOTNET_RUNNING_IN_CONTAINER=true \
    MODELS_DIR=/models \
    GRAPHS_DIR=/graphs \
    HF_HOME=/huggingface \
    TORCH_DEVICE=auto
WORKDIR /app
COPY --from=build /app .
VOLUME /models /graphs /huggingface
# Silo-to-silo and client gateway ports.
EXPOSE 11111 30000
ENTRYPOINT ["dotnet", "Silo.Gpu.dll"]
