using Microsoft.Extensions.Logging;

namespace OrleansGpu.Inference.Models.Hub;

/// <summary>
/// A lock held across processes through a lock file: opened with <see cref="FileShare.None"/>, which .NET takes on
/// Unix as an exclusive <c>flock</c>, the same lock Python's <c>filelock</c> (used by huggingface_hub) takes on its
/// <c>.locks/</c> files. The lock ends with the handle, so a process that dies releases it.
/// </summary>
public sealed class FileLock : IDisposable
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(100);

    private readonly FileStream _stream;

    private FileLock(FileStream stream) => _stream = stream;

    /// <summary>Takes the lock, waiting while another holder has it; logs once when it has to wait.</summary>
    public static async Task<FileLock> AcquireAsync(string path, ILogger logger, string waitingFor, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var logged = false;
        while (true)
        {
            try
            {
                return new FileLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None));
            }
            catch (IOException) when (File.Exists(path))
            {
                if (!logged)
                {
                    logger.LogInformation("Waiting for another download of {Model} (lock {Lock}) to finish", waitingFor, path);
                    logged = true;
                }

                await Task.Delay(Poll, cancellationToken);
            }
        }
    }

    public void Dispose() => _stream.Dispose();
}
