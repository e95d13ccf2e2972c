using System.Text.Json;

namespace OrleansGpu.Bench;

/// <summary>Prints a Markdown table and writes the same figures as JSON when <c>--out</c> is given.</summary>
internal static class Report
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static string Machine => $"{Environment.ProcessorCount} cores, {Environment.OSVersion}";

    public static void Table(string header, IEnumerable<string> rows)
    {
        Console.WriteLine(header);
        Console.WriteLine(string.Concat(Enumerable.Repeat("|---", header.Count(c => c == '|') - 1)) + "|");
        foreach (var row in rows)
        {
            Console.WriteLine(row);
        }
    }

    public static void Save(BenchOptions options, object result)
    {
        if (options.Output is { } output)
        {
            File.WriteAllText(output, JsonSerializer.Serialize(result, Indented));
        }
    }
}
