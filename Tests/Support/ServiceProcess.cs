using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace OrleansGpu.Tests.Support;

/// <summary>
/// A real process of ours on loopback: <c>Api.Front</c> (by default its one-machine mode, a co-hosted GPU silo) or
/// <c>Silo.Gpu</c>, started with the given environment and killed on dispose. Its output is kept for diagnostics.
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private ServiceProcess(Process process, int port)
    {
        _process = process;
        Port = port;
        BaseAddress = new Uri($"http://127.0.0.1:{port}");
    }

    public int Port { get; }

    public Uri BaseAddress { get; }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public bool HasExited => _process.HasExited;

    public int ProcessId => _process.Id;

    /// <summary>The front's build output beside the test's (same configuration).</summary>
    public static string AssemblyPath(string project = "Api.Front")
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
        return Path.Combine(Paths.RepositoryRoot, project, "bin", configuration, "net10.0", $"{project}.dll");
    }

    /// <summary>A Hugging Face cache that holds nothing, for processes that must not see the user's.</summary>
    public static string EmptyHuggingFaceCache { get; } = Path.Combine(Path.GetTempPath(), "orleansgpu-test-empty-hf-cache");

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Starts the front with its own silo and gateway ports, CPU inference and the given extra settings.</summary>
    public static ServiceProcess Start(string modelsDirectory, IReadOnlyDictionary<string, string>? environment = null, string? urls = null, string project = "Api.Front", params string[] arguments)
    {
        var port = FreePort();
        var silo = FreePort();
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(AssemblyPath(project));
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["ASPNETCORE_URLS"] = urls ?? $"http://127.0.0.1:{port}";
        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        info.Environment["Cluster__SiloPort"] = silo.ToString();
        info.Environment["Cluster__PrimarySiloPort"] = silo.ToString();
        info.Environment["Cluster__GatewayPort"] = FreePort().ToString();
        info.Environment["MODELS_DIR"] = modelsDirectory;

        // Graphs built from checkpoints go to the tests' own folder unless a test gives one, never the user's.
        info.Environment["GRAPHS_DIR"] = Path.Combine(Path.GetTempPath(), "orleansgpu-test-graphs");
        info.Environment["TORCH_DEVICE"] = "cpu";
        info.Environment["MODEL_BERTSCORE"] = "all-MiniLM-L6-v2";
        info.Environment["Logging__LogLevel__Default"] = "Warning";
        info.Environment["Logging__LogLevel__OrleansGpu"] = "Information";

        // Never the real hub, nor the user's Hugging Face cache or token: tests that want a hub start the stand-in.
        info.Environment["HF_HUB_OFFLINE"] = "1";
        info.Environment["HF_HUB_CACHE"] = EmptyHuggingFaceCache;
        info.Environment["HF_ENDPOINT"] = "http://127.0.0.1:9";
        info.Environment["HF_TOKEN_PATH"] = Path.Combine(EmptyHuggingFaceCache, "no-token");
        info.Environment.Remove("HF_TOKEN");
        info.Environment.Remove("HUGGING_FACE_HUB_TOKEN");
        info.Environment.Remove("MODEL_ALLOW");
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            // An empty value unsets the variable (for instance the quiet log levels above, to see the defaults).
            if (value.Length == 0)
            {
                info.Environment.Remove(key);
            }
            else
            {
                info.Environment[key] = value;
            }
        }

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var front = new ServiceProcess(process, port);
        process.OutputDataReceived += (_, e) => front.Append(e.Data);
        process.ErrorDataReceived += (_, e) => front.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return front;
    }

    /// <summary>Waits until <c>/health</c> answers 200 (the host has joined), or fails with the process output.</summary>
    public async Task WaitUntilHealthyAsync(TimeSpan? timeout = null)
    {
        using var http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(90));
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"The front exited with {_process.ExitCode}:\n{Output}");
            }

            try
            {
                using var response = await http.GetAsync("/health");
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }

            await Task.Delay(200);
        }

        throw new TimeoutException($"The front did not become healthy:\n{Output}");
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    /// <summary>Asks the process to stop, as <c>docker stop</c>, Kubernetes and systemd do (SIGTERM): it may drain first.</summary>
    public void Terminate()
    {
        if (!_process.HasExited && SendSignal(_process.Id, SigTerm) != 0)
        {
            throw new InvalidOperationException($"kill({_process.Id}, SIGTERM) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        await _process.WaitForExitAsync();
        _process.Dispose();
    }

    private const int SigTerm = 15;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }
}
