using OrleansGpu.Bench;

// Benchmarks, by scenario:
//   embed-short | embed-long | bertscore   HTTP load against a running front (HttpLoad)
//   embed-oracle                           the same with the embedding oracle's real sentences; useful tokens/s (HttpLoad)
//   status | health                        the front's own round trip: one grain call per host, or none (HttpLoad)
//   embed-2048                             one OpenAI request of 2,048 inputs at a time against a running front (HttpLoad)
//   encoder                                model-only throughput of one ONNX encoder (EncoderThroughput)
//   parity                                 the default model's embeddings on a device against the CPU (DeviceParity)
//   precision                              fp16 against fp32: the native graph's embeddings and BERTScore in both (PrecisionError)
// Each prints a Markdown table row and, with --out, writes its figures as JSON.
var options = BenchOptions.Parse(args);
return options.Scenario switch
{
    "encoder" => EncoderThroughput.Run(options),
    "parity" => DeviceParity.Run(options),
    "precision" => PrecisionError.Run(options),
    _ => await HttpLoad.RunAsync(options),
};
