using Microsoft.Extensions.Logging;
using Npgsql;

namespace OrleansGpu.Grains.Hosting;

/// <summary>Applies the project's membership schema (<c>tools/postgres/clustering.sql</c>) to a PostgreSQL database.</summary>
public static class PostgresSchema
{
    public static string Script
    {
        get
        {
            using var stream = typeof(PostgresSchema).Assembly.GetManifestResourceStream("clustering.sql")
                ?? throw new InvalidOperationException("The clustering.sql resource is missing from the build.");
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd();
        }
    }

    /// <summary>Runs the script in one transaction; it is idempotent, so an initialised database is left as it was.</summary>
    public static async Task ApplyAsync(string connectionString, ILogger logger, CancellationToken cancellationToken = default)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using (var command = new NpgsqlCommand(Script, connection, transaction))
        {
            await command.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        await using var count = new NpgsqlCommand("SELECT count(*) FROM OrleansQuery", connection);
        var queries = (long)(await count.ExecuteScalarAsync(cancellationToken))!;
        logger.LogInformation("Membership schema applied to {Database} on {Host}: {Queries} queries", connection.Database, connection.Host, queries);
    }
}
