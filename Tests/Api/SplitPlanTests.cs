using OrleansGpu.Api.Scatter;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using OrleansGpu.Api.Contracts;
using OrleansGpu.Grains;
using OrleansGpu.Grains.Hosting;

namespace OrleansGpu.Tests.Api;

/// <summary>Where the front cuts a large request, and how /status merges the parts the hosts report.</summary>
public sealed class SplitPlanTests
{
    [Fact]
    public void A_request_is_whole_on_one_host_below_twice_the_minimum_or_with_splitting_off()
    {
        Assert.Single(SplitPlan.Parts(2000, hosts: 1, minItems: 256));
        Assert.Single(SplitPlan.Parts(511, hosts: 3, minItems: 256));
        Assert.Single(SplitPlan.Parts(20_000, hosts: 3, minItems: 0));
        Assert.Equal([new PartRange(0, 256), new PartRange(256, 256)], SplitPlan.Parts(512, hosts: 3, minItems: 256));
        Assert.Equal([666, 667, 667], SplitPlan.Parts(2000, hosts: 3, minItems: 256).Select(p => p.Count));
        Assert.Equal(4, SplitPlan.Parts(2000, hosts: 8, minItems: 500).Count);
    }

    [Fact]
    public void Bertscore_parts_start_at_a_matching_chunk_and_keep_each_candidates_references()
    {
        // 1,000 candidates with one reference: cuts at multiples of 64 candidates, near thirds.
        Assert.Equal([new PartRange(0, 320), new PartRange(320, 320), new PartRange(640, 360)], SplitPlan.Parts(1000, 3, 256, c => c % 64 == 0));

        // Candidates with 1, 2 or 3 references: each cut falls where the pairs before it are a multiple of 64.
        var counts = Enumerable.Range(0, 900).Select(i => 1 + (i * 7 % 3)).ToArray();
        var pairsBefore = new int[counts.Length + 1];
        for (var i = 0; i < counts.Length; i++)
        {
            pairsBefore[i + 1] = pairsBefore[i] + counts[i];
        }

        var parts = SplitPlan.Parts(counts.Length, 3, 200, c => pairsBefore[c] % 64 == 0);
        Assert.Equal(3, parts.Count);
        Assert.Equal(counts.Length, parts.Sum(p => p.Count));
        Assert.All(parts, p => Assert.Equal(0, pairsBefore[p.Start] % 64));

        // No allowed cut at all: the request stays whole.
        Assert.Single(SplitPlan.Parts(1000, 3, 256, _ => false));
    }

    [Fact]
    public void Status_merges_the_parts_of_a_request_into_one_job_whose_progress_counts_finished_parts_as_done()
    {
        var started = DateTimeOffset.UtcNow;
        HostStatus[] statuses =
        [
            new("gpu-a", 2, 1, 0, [new JobStatus("a1", "embed", started, 10, "m", 0.5, "running")]),
            new("gpu-b", 2, 1, 0, [new JobStatus("b1", "embed", started.AddSeconds(1), 300, "m", 0.5, "running", Part: new RequestPart("req", 1, 3, 1000))]),
            new("gpu-c", 2, 0, 1, [new JobStatus("c1", "embed", null, 400, "m", 0, "queued", Part: new RequestPart("req", 2, 3, 1000))]),
        ];

        var jobs = SplitStatus.ActiveJobs(statuses);

        Assert.Equal(2, jobs.Count);
        Assert.Equal("a1", jobs[0].Id); // an ordinary job stays as its host lists it
        Assert.Null(jobs[0].Parts);
        Assert.Null(jobs[0].PartOf);
        var merged = jobs[1];
        Assert.Equal("req", merged.Id);
        Assert.Equal(1000, merged.Items);
        Assert.Equal("running", merged.State);
        Assert.Equal(started.AddSeconds(1), merged.StartedAt);
        Assert.Equal("gpu-b,gpu-c", merged.Host);

        // Part 1 (300 items) is no longer listed: finished. Part 2 is half done, part 3 not started.
        Assert.Equal((300 + 150) / 1000.0, merged.Progress, 6);
        Assert.Equal(["b1", "c1"], merged.Parts!.Select(p => p.Id));
        Assert.Equal([new JobPartOfResponse("req", 2, 3), new JobPartOfResponse("req", 3, 3)], merged.Parts!.Select(p => p.PartOf));
    }

    [Fact]
    public void The_minimum_part_comes_from_its_variable_or_key_and_a_bad_one_is_refused_naming_it()
    {
        Assert.Equal(256, Read().MinTexts);
        Assert.Equal(100, Read(("GPU_SPLIT_MIN_TEXTS", "100")).MinTexts);
        Assert.Equal(0, Read(("Split:MinTexts", "0")).MinTexts);
        Assert.Equal(50, Read(("Split:MinTexts", "7"), ("GPU_SPLIT_MIN_TEXTS", "50")).MinTexts);
        Assert.Contains("GPU_SPLIT_MIN_TEXTS (Split:MinTexts) must be 0", Assert.Throws<OptionsValidationException>(() => Read(("GPU_SPLIT_MIN_TEXTS", "-1"))).Message);
        Assert.Contains("GPU_SPLIT_MIN_TEXTS (Split:MinTexts)", Assert.Throws<OptionsValidationException>(() => Read(("GPU_SPLIT_MIN_TEXTS", "lots"))).Message);
    }

    private static SplitOptions Read(params (string Key, string Value)[] settings)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value)))
            .Build();
        var services = new ServiceCollection();
        services.AddSettings<SplitOptions, SplitOptionsValidator>(configuration, SplitOptions.Section, SplitOptions.Aliases);
        using var provider = services.BuildServiceProvider();
        return provider.GetRequiredService<IOptions<SplitOptions>>().Value;
    }
}
