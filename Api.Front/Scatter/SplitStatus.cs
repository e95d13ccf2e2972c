using OrleansGpu.Api.Contracts;
using OrleansGpu.Grains;

namespace OrleansGpu.Api.Scatter;

/// <summary>
/// <c>/status</c>'s jobs: each host's jobs as they are, but the parts of a request split across hosts (the host jobs
/// that carry the same <see cref="RequestPart.RequestId"/>) as one job of the whole request, with its parts.
/// </summary>
public static class SplitStatus
{
    /// <summary>One host's job as <c>/status</c> shows it; a part names the request it belongs to.</summary>
    public static JobResponse Job(JobStatus job, string host) => new(
        job.Id,
        job.Type,
        job.StartedAt,
        job.Items,
        job.Model,
        job.Progress,
        job.State,
        host,
        job.BytesDone,
        job.BytesTotal,
        job.Part is { } p ? new JobPartOfResponse(p.RequestId, p.Index + 1, p.Count) : null);

    /// <summary>
    /// Every host's jobs, the parts of each split request merged into one: its id is the request's, its items the
    /// request's, its progress the share of the request's items done (a part no host lists any more has finished),
    /// its host each part's host in part order. Ordinary jobs come first, as the hosts list them.
    /// </summary>
    public static IReadOnlyList<JobResponse> ActiveJobs(IReadOnlyList<HostStatus> statuses)
    {
        var jobs = statuses.SelectMany(s => s.Jobs.Select(j => (Status: j, Host: s.Host))).ToList();
        var whole = jobs.Where(j => j.Status.Part is null).Select(j => Job(j.Status, j.Host));
        var split = jobs
            .Where(j => j.Status.Part is not null)
            .GroupBy(j => j.Status.Part!.RequestId, StringComparer.Ordinal)
            .Select(Merge)
            .OrderBy(j => j.StartedAt ?? DateTimeOffset.MaxValue);
        return [.. whole, .. split];
    }

    private static JobResponse Merge(IGrouping<string, (JobStatus Status, string Host)> parts)
    {
        var ordered = parts.OrderBy(p => p.Status.Part!.Index).ThenByDescending(p => p.Status.Progress).ToList();
        var first = ordered[0].Status;
        var requestItems = first.Part!.RequestItems;

        // A part sent again after a membership change may show on two hosts for a moment: count its furthest.
        var listed = ordered.GroupBy(p => p.Status.Part!.Index).Select(g => g.First().Status).ToList();
        var listedItems = listed.Sum(p => p.Items);
        var done = Math.Max(0, requestItems - listedItems) + listed.Sum(p => p.Items * p.Progress);
        var progress = requestItems == 0 ? 1 : Math.Clamp(done / requestItems, 0, 1);

        return new JobResponse(
            parts.Key,
            first.Type,
            ordered.Select(p => p.Status.StartedAt).Where(s => s is not null).Min(),
            requestItems,
            first.Model,
            Math.Round(progress, 4),
            ordered.Any(p => p.Status.State == "running") ? "running" : "queued",
            string.Join(",", ordered.Select(p => p.Host)),
            Parts: [.. ordered.Select(p => Job(p.Status, p.Host))]);
    }
}
