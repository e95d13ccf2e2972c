using System.Globalization;

namespace OrleansGpu.Api.Hosting;

/// <summary>
/// Reads the front's settings: the seed's environment variable when set (it wins, so the seed's users switch
/// without changes), else the configuration key. A value that does not parse is collected as a problem, which the
/// options' validation reports at start, naming the variable and the value.
/// </summary>
internal sealed class Settings(IConfiguration configuration, List<string> problems)
{
    public string? String(string variable, string key) =>
        NonEmpty(configuration[variable]) ?? NonEmpty(configuration[key]);

    public int? PositiveInt(string variable, string key)
    {
        if (String(variable, key) is not { } value)
        {
            return null;
        }

        if (int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0)
        {
            return n;
        }

        problems.Add($"{variable} ({key}) must be a positive integer; got '{value}'.");
        return null;
    }

    public bool? Bool(string variable, string key)
    {
        if (String(variable, key) is not { } value)
        {
            return null;
        }

        if (bool.TryParse(value, out var b))
        {
            return b;
        }

        problems.Add($"{variable} ({key}) must be true or false; got '{value}'.");
        return null;
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
