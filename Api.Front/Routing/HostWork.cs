using OrleansGpu.Grains;

namespace OrleansGpu.Api.Routing;

/// <summary>
/// What the router knows of a request: its estimated size in tokens, counted against its host while it runs, the
/// model it runs as the request names it (null: any host will do), for routing it where that model is warm, and the
/// precision the request asks for (<see cref="Precisions"/>; null: none, the host's default for the model).
/// </summary>
/// <remarks>
/// The precision is the one asked for, not the one a host runs: which sessions serve it is each host's decision (its
/// <c>GPU_PRECISION</c> default for the model, whether it runs fp16 at all), so each host reports it per model
/// (<see cref="HostModel.RunsIn"/>) and warmth is read through that (<see cref="HostModel.IsWarmFor"/>). A CPU host that
/// answers fp16 in fp32 is then warm for an fp16 request when its fp32 sessions are, and a host warm in fp32 only is
/// cold for it where fp16 really runs, with no copy of the hosts' rules in the front.
/// </remarks>
public readonly record struct HostWork(long Tokens, string? Model = null, ModelUse Use = ModelUse.Embedding, string? Precision = null);
