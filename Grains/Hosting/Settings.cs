using System.ComponentModel;
using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace OrleansGpu.Grains.Hosting;

/// <summary>
/// An environment variable that sets an option property, kept from the seed service (<c>GPU_MAX_CONCURRENT</c>) or
/// named in the README (<c>ROUTING</c>). It wins over the option's configuration key, so the seed's users can switch
/// without changes.
/// </summary>
public sealed record SettingAlias(string Variable, string Property);

/// <summary>
/// Binds an options class from its configuration section, then from its <see cref="SettingAlias">variables</see>,
/// and names a setting the way its user wrote it (<c>GPU_MAX_CONCURRENT (Gpu:MaxConcurrent)</c>) in every error.
/// The one place where options are read from configuration; the options classes hold only defaults and rules.
/// </summary>
public static class Settings
{
    /// <summary>
    /// Registers <typeparamref name="T"/> bound from <paramref name="section"/> and <paramref name="aliases"/>, checked by
    /// <typeparamref name="TValidator"/> when the host starts: a bad value stops the start with a message naming it.
    /// </summary>
    public static OptionsBuilder<T> AddSettings<T, TValidator>(
        this IServiceCollection services, IConfiguration configuration, string section, IReadOnlyList<SettingAlias> aliases)
        where T : class
        where TValidator : class, IValidateOptions<T>
    {
        services.AddSingleton<IValidateOptions<T>, TValidator>();
        return services.AddOptions<T>().Configure(o => Bind(configuration, section, o, aliases)).ValidateOnStart();
    }

    /// <summary>Binds <paramref name="target"/> from <paramref name="section"/> and the aliases; a value that does not convert throws, naming the setting.</summary>
    public static void Bind(IConfiguration configuration, string section, object target, IReadOnlyList<SettingAlias> aliases)
    {
        try
        {
            configuration.GetSection(section).Bind(target);
        }
        catch (InvalidOperationException ex)
        {
            // The binder's message names the key and the type ("Failed to convert configuration value at 'Gpu:X'...").
            throw new OptionsValidationException(section, target.GetType(), [ex.InnerException is { } inner ? $"{ex.Message} {inner.Message}" : ex.Message]);
        }

        foreach (var alias in aliases)
        {
            if (configuration[alias.Variable] is { } raw && !string.IsNullOrWhiteSpace(raw))
            {
                Set(target, alias.Property, raw.Trim(), $"{alias.Variable} ({section}:{alias.Property})");
            }
        }
    }

    /// <summary>How errors name a property: its variable and key where it has a variable, else its key.</summary>
    public static string Name(string section, string property, IReadOnlyList<SettingAlias> aliases) =>
        aliases.FirstOrDefault(a => a.Property == property) is { } alias
            ? $"{alias.Variable} ({section}:{property})"
            : $"{section}:{property}";

    /// <summary>Checks a bound options object with <paramref name="rules"/>: each returns an error naming its setting, or null.</summary>
    public static ValidateOptionsResult Validate(params string?[] rules)
    {
        var failures = rules.OfType<string>().ToList();
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void Set(object target, string property, string value, string setting)
    {
        var info = target.GetType().GetProperty(property, BindingFlags.Public | BindingFlags.Instance)
            ?? throw new InvalidOperationException($"{target.GetType().Name} has no property {property} for {setting}.");
        var type = Nullable.GetUnderlyingType(info.PropertyType) ?? info.PropertyType;
        object? converted;
        try
        {
            converted = TypeDescriptor.GetConverter(type).ConvertFromString(null, CultureInfo.InvariantCulture, value);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or NotSupportedException or OverflowException)
        {
            throw new OptionsValidationException(setting, target.GetType(), [$"{setting}: '{value}' is not {Describe(type)}. {ex.Message}"]);
        }

        info.SetValue(target, converted);
    }

    private static string Describe(Type type) =>
        type == typeof(int) || type == typeof(long) ? "a whole number"
        : type == typeof(bool) ? "true or false"
        : type == typeof(TimeSpan) ? "a duration (hh:mm:ss)"
        : $"a valid {type.Name}";
}
