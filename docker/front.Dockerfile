# The REST front as a pure Orleans client (no inference here: the CPU-only ONNX Runtime keeps the image small).
# Build from the repository root: docker build -f docker/front.Dockerfile -t orleansgpu-front .

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish Api.Front -c Release -r linux-x64 --self-contained false -p:OnnxRuntimeFlavor=cpu -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0
ENV ASPNETCORE_URLS=http://0.0.0.0:8765 \
    Cluster__Mode=client
WORKDIR /app
COPY --from=build /app .
EXPOSE 8765
ENTRYPOINT ["dotnet", "Api.Front.dll"]
