using OrleansGpu.Grains;

namespace OrleansGpu.Api.Routing;

/// <summary>
/// What the router knows of a request: its estimated size in tokens, counted against its host while it runs, and the
/// model it runs as the request names it (null: any host will do), for routing it where that model is warm.
/// </summary>
public readonly record struct HostWork(long Tokens, string? Model = null, ModelUse Use = ModelUse.Embedding);
