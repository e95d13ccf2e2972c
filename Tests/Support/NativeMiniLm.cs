using Onnx;
using OrleansGpu.Inference.Models;
using OrleansGpu.Tests.Inference.Graphs;

namespace OrleansGpu.Tests.Support;

/// <summary>
/// The bundled all-MiniLM-L6-v2 as a model folder without an ONNX export: its settings and tokenizer, and a
/// <c>model.safetensors</c> made from the export's initializers (<see cref="OnnxCheckpointExport"/>), so that it is
/// served through the native graph builder.
/// </summary>
public static class NativeMiniLm
{
    /// <summary>Writes the folder at <paramref name="target"/> (created).</summary>
    public static void WriteFolder(string target)
    {
        var source = new ModelStore(Paths.TestModels).Resolve("all-MiniLM-L6-v2");
        var onnx = source.Weights.OnnxPath!;
        foreach (var file in Directory.GetFiles(source.Directory, "*", SearchOption.AllDirectories).Where(f => f != onnx))
        {
            var copy = Path.Combine(target, Path.GetRelativePath(source.Directory, file));
            Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
            File.Copy(file, copy);
        }

        var exported = ModelProto.Parser.ParseFrom(File.ReadAllBytes(onnx));
        OnnxCheckpointExport.WriteSafetensors(Path.Combine(target, "model.safetensors"), OnnxCheckpointExport.Tensors(exported));
    }
}
