using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Models;
using OrleansGpu.Inference.Models.Hub;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Models;

/// <summary>
/// Downloads from a hub STAND-IN on loopback (<see cref="HubStandIn"/>: the hub's URLs and headers, LFS files
/// redirected to a second "CDN" host, Range, errors with X-Error-Code) into a Hugging Face cache in a temp folder.
/// </summary>
[Collection(MiniLmCollection.Name)]
public sealed class HubDownloadTests(MiniLmFixture minilm) : IAsyncLifetime
{
    private readonly string _root = Directory.CreateTempSubdirectory("hub-").FullName;
    private HubStandIn _hub = null!;

    private string CacheDir => Path.Combine(_root, "hf-cache");

    private string ModelsDir => Path.Combine(_root, "models");

    public async ValueTask InitializeAsync() => _hub = await HubStandIn.StartAsync();

    public async ValueTask DisposeAsync()
    {
        await _hub.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public async Task Stand_in_hub_download_takes_only_what_the_model_needs_into_the_huggingface_cache_and_serves_it()
    {
        var repo = _hub.Add("acme/minilm-st", TestRepos.MiniLmSentenceTransformers());
        using var sources = Sources();

        var folder = await sources.ResolveAsync("acme/minilm-st", Ct);

        // The cache layout huggingface_hub writes: refs/main → commit, snapshot files as relative links into blobs
        // named by sha256 (LFS) or git sha1.
        var repoFolder = Path.Combine(CacheDir, "models--acme--minilm-st");
        Assert.Equal(repo.MainCommit, File.ReadAllText(Path.Combine(repoFolder, "refs", "main")));
        Assert.Equal(Path.Combine(repoFolder, "snapshots", repo.MainCommit), folder.Directory);
        var onnx = new FileInfo(Path.Combine(folder.Directory, "onnx", "model.onnx"));
        Assert.Equal($"../../../blobs/{HubStandIn.Sha256(TestRepos.MiniLmOnnx)}", onnx.LinkTarget);
        Assert.StartsWith("../../blobs/", new FileInfo(Path.Combine(folder.Directory, "config.json")).LinkTarget);
        Assert.StartsWith("../../../blobs/", new FileInfo(Path.Combine(folder.Directory, "1_Pooling", "config.json")).LinkTarget);
        Assert.Equal(TestRepos.MiniLmOnnx.Length, new FileInfo(onnx.ResolveLinkTarget(true)!.FullName).Length);
        Assert.Empty(Directory.GetFiles(Path.Combine(repoFolder, "blobs"), "*.incomplete"));

        // Only the files a model needs: no other weights format, no other ONNX variant.
        var fetched = _hub.Requests.Where(r => r.Server == "hub" && r.Method == "GET" && r.Path.Contains("/resolve/")).Select(r => r.Path.Split("/resolve/")[1].Split('/', 2)[1]).ToHashSet();
        Assert.Contains("onnx/model.onnx", fetched);
        Assert.Contains("1_Pooling/config.json", fetched);
        Assert.Contains("modules.json", fetched);
        Assert.DoesNotContain(fetched, f => TestRepos.Decoys.Contains(f));
        Assert.All(TestRepos.Decoys, d => Assert.False(File.Exists(Path.Combine(folder.Directory, d)), d));
        Assert.Single(_hub.CdnGets(TestRepos.MiniLmOnnx));

        // What was downloaded is the real model with its own modules: the embeddings are the bundled model's.
        Assert.Equal(WeightsFormat.Onnx, folder.Weights.Format);
        Assert.Equal(PoolingModes.Mean, folder.SentenceTransformers.Pooling);
        Assert.True(folder.SentenceTransformers.Normalize);
        using var model = EmbeddingModel.Load(folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions);
        string[] texts = ["The weather is lovely today.", "It's so sunny outside!"];
        Assert.Equal(minilm.Embedding.Embed(texts), model.Embed(texts));

        // A second resolve (a restart) reads the cache and asks the hub nothing.
        var asked = _hub.Requests.Count;
        using var again = Sources();
        Assert.Equal(folder.Directory, (await again.ResolveAsync("acme/minilm-st", Ct)).Directory);
        Assert.Equal(asked, _hub.Requests.Count);
    }

    [Fact]
    public async Task A_huggingface_cache_written_by_python_is_read_in_place_without_the_network()
    {
        // The layout exactly as huggingface_hub leaves it: blobs named by hash, relative symlinks, refs/main.
        const string commit = "0123456789abcdef0123456789abcdef01234567";
        var files = TestRepos.MiniLmSentenceTransformers(pooling: "cls", normalize: false);
        files.Remove("onnx/model.onnx");
        files["model.onnx"] = TestRepos.MiniLmOnnx; // an older export layout, at the root
        BuildPythonCache(CacheDir, "sentence-transformers/paraphrase-test", commit, files.Where(f => !TestRepos.Decoys.Contains(f.Key)));
        await _hub.StopAsync(); // any attempt to reach the hub would fail

        using var sources = Sources();
        var folder = await sources.ResolveAsync("paraphrase-test", Ct); // a bare name, as sentence-transformers resolves it

        Assert.Equal("sentence-transformers/paraphrase-test", folder.Name);
        Assert.Equal(Path.Combine(CacheDir, "models--sentence-transformers--paraphrase-test", "snapshots", commit), folder.Directory);
        Assert.Equal(PoolingModes.Cls, folder.SentenceTransformers.Pooling);
        Assert.False(folder.SentenceTransformers.Normalize);
        using var model = EmbeddingModel.Load(folder, MiniLmFixture.Graphs, MiniLmFixture.EncoderOptions);
        Assert.Equal(PoolingModes.Cls, model.Pooling);
        Assert.False(model.Normalizes);

        // Pinned to the cached commit, and the environment variables that find the cache.
        Assert.Equal(folder.Directory, (await sources.ResolveAsync($"sentence-transformers/paraphrase-test@{commit}", Ct)).Directory);
        Assert.Equal("/x/hub-cache", ModelSourceOptions.DefaultCacheDirectory(v => v switch { "HF_HUB_CACHE" => "/x/hub-cache", "HF_HOME" => "/y", _ => null }));
        Assert.Equal(Path.Combine("/y", "hub"), ModelSourceOptions.DefaultCacheDirectory(v => v == "HF_HOME" ? "/y" : null));
        Assert.Equal(Path.Combine("/z", "huggingface", "hub"), ModelSourceOptions.DefaultCacheDirectory(v => v == "XDG_CACHE_HOME" ? "/z" : null));
    }

    [Fact]
    public async Task A_sha256_mismatch_is_refused_and_nothing_that_looks_complete_is_kept()
    {
        _hub.Add("acme/minilm-st", TestRepos.MiniLmSentenceTransformers());
        _hub.Corrupt(TestRepos.MiniLmOnnx);
        using var sources = Sources();

        var error = await Assert.ThrowsAsync<ModelDownloadException>(() => sources.ResolveAsync("acme/minilm-st", Ct));
        Assert.Contains("sha256", error.Message);
        Assert.Contains("onnx/model.onnx", error.Message);

        var blobs = Path.Combine(CacheDir, "models--acme--minilm-st", "blobs");
        Assert.False(File.Exists(Path.Combine(blobs, HubStandIn.Sha256(TestRepos.MiniLmOnnx))));
        Assert.Empty(Directory.GetFiles(blobs, "*.incomplete"));
        Assert.False(File.Exists(Path.Combine(CacheDir, "models--acme--minilm-st", "refs", "main")));
        Assert.Null(sources.FindLocal(ModelReference.Parse("acme/minilm-st")));

        _hub.Heal();
        var folder = await sources.ResolveAsync("acme/minilm-st", Ct);
        Assert.Equal(TestRepos.MiniLmOnnx, File.ReadAllBytes(folder.Weights.OnnxPath!));
    }

    [Fact]
    public async Task A_connection_cut_mid_file_is_resumed_with_a_range_and_the_file_checks_out()
    {
        _hub.Add("acme/minilm-st", TestRepos.MiniLmSentenceTransformers());
        const long cut = 30_000_000;
        _hub.CutOnce(TestRepos.MiniLmOnnx, cut);
        using var sources = Sources();

        var folder = await sources.ResolveAsync("acme/minilm-st", Ct);

        // The second GET asks for the rest from where the file stopped (at most the cut: bytes in flight when the
        // connection broke are lost), not for the whole file again.
        var gets = _hub.CdnGets(TestRepos.MiniLmOnnx);
        Assert.Equal(2, gets.Count);
        Assert.Null(gets[0].Range);
        Assert.Matches("^bytes=[0-9]+-$", gets[1].Range);
        var resumedAt = long.Parse(gets[1].Range!["bytes=".Length..^1]);
        Assert.InRange(resumedAt, 1, cut);
        Assert.Equal(TestRepos.MiniLmOnnx, File.ReadAllBytes(folder.Weights.OnnxPath!));
    }

    [Fact]
    public async Task An_interrupted_download_leaves_only_an_incomplete_blob_and_the_next_one_resumes_it()
    {
        _hub.Add("acme/minilm-st", TestRepos.MiniLmSentenceTransformers());
        const long perConnection = 1_000_000;
        _hub.CutAlways(TestRepos.MiniLmOnnx, perConnection);
        using var sources = Sources();

        await Assert.ThrowsAsync<HubUnavailableException>(() => sources.ResolveAsync("acme/minilm-st", Ct));

        // Nothing looks complete: no blob under the final name, no link to it, no ref; the model is not found locally.
        var repoFolder = Path.Combine(CacheDir, "models--acme--minilm-st");
        var blob = Path.Combine(repoFolder, "blobs", HubStandIn.Sha256(TestRepos.MiniLmOnnx));
        Assert.False(File.Exists(blob));
        Assert.Equal(HubDownloader.MaxAttempts, _hub.CdnGets(TestRepos.MiniLmOnnx).Count);
        var kept = new FileInfo(blob + ".incomplete").Length;
        Assert.InRange(kept, 1, HubDownloader.MaxAttempts * perConnection);
        Assert.False(File.Exists(Path.Combine(repoFolder, "refs", "main")));
        Assert.Empty(Directory.GetFiles(Path.Combine(repoFolder, "snapshots"), "model.onnx", SearchOption.AllDirectories));
        Assert.Null(sources.FindLocal(ModelReference.Parse("acme/minilm-st")));

        // Another process (a new ModelSources) picks up where it stopped.
        _hub.Heal();
        using var later = Sources();
        var folder = await later.ResolveAsync("acme/minilm-st", Ct);
        Assert.Equal($"bytes={kept}-", _hub.CdnGets(TestRepos.MiniLmOnnx)[^1].Range);
        Assert.Equal(TestRepos.MiniLmOnnx, File.ReadAllBytes(folder.Weights.OnnxPath!));
        Assert.False(File.Exists(blob + ".incomplete"));
    }

    [Fact]
    public async Task Many_threads_and_two_sources_sharing_the_cache_cause_one_download()
    {
        _hub.Add("acme/minilm-st", TestRepos.MiniLmSentenceTransformers());
        _hub.CdnBytesPerSecond = 150_000_000; // slow enough that every caller arrives while it runs
        using var first = Sources();
        using var second = Sources(); // its own process state, same cache: only the lock file keeps them apart

        var asks = Enumerable.Range(0, 8).Select(i => Task.Run(() => (i % 2 == 0 ? first : second).ResolveAsync("acme/minilm-st", Ct))).ToList();
        var folders = await Task.WhenAll(asks);

        Assert.Single(folders.Select(f => f.Directory).Distinct());
        Assert.Single(_hub.CdnGets(TestRepos.MiniLmOnnx));
        Assert.Single(_hub.Requests, r => r.Server == "hub" && r.Method == "GET" && r.Path.EndsWith("/vocab.txt"));
    }

    [Fact]
    public async Task Offline_the_cache_serves_and_everything_else_is_a_not_found_that_says_why_without_touching_the_hub()
    {
        const string commit = "89abcdef0123456789abcdef0123456789abcdef";
        BuildPythonCache(CacheDir, "acme/cached", commit, TestRepos.MiniLmSentenceTransformers().Where(f => !TestRepos.Decoys.Contains(f.Key)));
        _hub.Add("acme/minilm-st", TestRepos.MiniLmSentenceTransformers());
        using var sources = Sources(offline: true);

        Assert.Equal("acme/cached", (await sources.ResolveAsync("acme/cached", Ct)).Name);
        var error = await Assert.ThrowsAsync<ModelNotFoundException>(() => sources.ResolveAsync("acme/minilm-st", Ct));
        Assert.Contains("HF_HUB_OFFLINE", error.Message);
        Assert.Contains("Silo.Gpu fetch acme/minilm-st", error.Message);
        Assert.DoesNotContain(_root, error.Message);
        Assert.Empty(_hub.Requests);
    }

    [Fact]
    public async Task A_revision_pins_the_commit_it_names_and_main_stays_main()
    {
        var repo = _hub.Add("acme/pinned", TestRepos.MiniLmSentenceTransformers(maxSeqLength: 128));
        var v1 = _hub.AddRevision(repo, "v1.0", TestRepos.MiniLmSentenceTransformers(maxSeqLength: 64));
        using var sources = Sources();

        var tagged = await sources.ResolveAsync("acme/pinned@v1.0", Ct);
        var main = await sources.ResolveAsync("acme/pinned", Ct);

        Assert.Equal("acme/pinned@v1.0", tagged.Name);
        Assert.Equal(64, tagged.Config.EmbeddingLimit);
        Assert.EndsWith(v1, tagged.Directory);
        Assert.Equal(v1, File.ReadAllText(Path.Combine(CacheDir, "models--acme--pinned", "refs", "v1.0")));
        Assert.Equal(128, main.Config.EmbeddingLimit);
        Assert.EndsWith(repo.MainCommit, main.Directory);

        // The same blob (the ONNX file, identical in both commits) was downloaded once.
        Assert.Single(_hub.CdnGets(TestRepos.MiniLmOnnx));

        // A commit hash is served from the cache without asking the hub.
        var asked = _hub.Requests.Count;
        Assert.Equal(tagged.Directory, (await sources.ResolveAsync($"acme/pinned@{v1}", Ct)).Directory);
        Assert.Equal(asked, _hub.Requests.Count);

        var missing = await Assert.ThrowsAsync<ModelNotFoundException>(() => sources.ResolveAsync("acme/pinned@v9", Ct));
        Assert.Contains("no revision 'v9'", missing.Message);
    }

    [Fact]
    public async Task A_gated_repo_needs_an_accepted_token_and_the_token_goes_to_the_hub_host_only()
    {
        _hub.Add("acme/gated", TestRepos.MiniLmSentenceTransformers(), gated: true);
        _hub.AcceptedTokens.Add("hf_good");

        using (var anonymous = Sources())
        {
            var error = await Assert.ThrowsAsync<ModelGatedException>(() => anonymous.ResolveAsync("acme/gated", Ct));
            Assert.Contains("401", error.Message);
            Assert.Contains("Set HF_TOKEN", error.Message);
            Assert.Contains($"{_hub.Endpoint}/acme/gated", error.Message); // where to accept the licence
        }

        using (var refused = Sources(token: "hf_not_accepted"))
        {
            var error = await Assert.ThrowsAsync<ModelGatedException>(() => refused.ResolveAsync("acme/gated", Ct));
            Assert.Contains("403", error.Message);
            Assert.Contains("accept the model's licence", error.Message);
        }

        using var accepted = Sources(token: "hf_good");
        var folder = await accepted.ResolveAsync("acme/gated", Ct);
        Assert.Equal("acme/gated", folder.Name);

        var withToken = _hub.Requests.Where(r => r.Authorization == "Bearer hf_good").ToList();
        Assert.NotEmpty(withToken);
        Assert.All(withToken, r => Assert.Equal("hub", r.Server));
        var cdn = _hub.Requests.Where(r => r.Server == "cdn").ToList();
        Assert.NotEmpty(cdn);
        Assert.All(cdn, r => Assert.Null(r.Authorization));
    }

    [Fact]
    public async Task An_unknown_repo_and_an_unreachable_hub_say_what_to_do()
    {
        using var sources = Sources();
        var unknown = await Assert.ThrowsAsync<ModelNotFoundException>(() => sources.ResolveAsync("acme/nothing-here", Ct));
        Assert.Contains("not found on the Hugging Face hub", unknown.Message);
        Assert.Contains("Check the name", unknown.Message);
        Assert.Contains("host gpu-test", unknown.Message);

        // Remembered for a while: asking again costs the hub nothing.
        var asked = _hub.Requests.Count;
        await Assert.ThrowsAsync<ModelNotFoundException>(() => sources.ResolveAsync("acme/nothing-here", Ct));
        Assert.Equal(asked, _hub.Requests.Count);

        await _hub.StopAsync();
        var unreachable = await Assert.ThrowsAsync<HubUnavailableException>(() => sources.ResolveAsync("acme/other", Ct));
        Assert.Contains("cannot be reached (connection refused)", unreachable.Message);
        Assert.Contains("HF_ENDPOINT", unreachable.Message);
        Assert.Contains("HF_HUB_OFFLINE=1", unreachable.Message);
        Assert.Contains("Silo.Gpu fetch acme/other", unreachable.Message);
    }

    [Fact]
    public async Task Unknown_names_are_remembered_in_a_bounded_list()
    {
        using var sources = Sources();
        for (var i = 0; i < ModelSources.UnknownNameCapacity + 200; i++)
        {
            await Assert.ThrowsAsync<ModelNotFoundException>(() => sources.NameAsync($"acme/made-up-{i}", Ct));
        }

        Assert.Equal(ModelSources.UnknownNameCapacity, sources.UnknownNames);
    }

    [Fact]
    public async Task A_bare_name_the_hub_moved_follows_its_redirect_and_is_cached_under_the_name_asked()
    {
        _hub.Add("FacebookAI/roberta-tiny", TestRepos.Tiny("model.onnx"));
        _hub.Rename("roberta-tiny", "FacebookAI/roberta-tiny");
        using var sources = Sources();

        Assert.Equal("roberta-tiny", await sources.NameAsync("roberta-tiny", Ct));
        var folder = await sources.ResolveAsync("roberta-tiny", Ct);

        // sentence-transformers/roberta-tiny was tried first (a bare name), then the name itself, redirected.
        Assert.Contains(_hub.Requests, r => r.Path == "/api/models/sentence-transformers/roberta-tiny/revision/main");
        Assert.Contains(_hub.Requests, r => r.Path == "/api/models/FacebookAI/roberta-tiny/revision/main");
        Assert.Equal(Path.Combine(CacheDir, "models--roberta-tiny"), Path.GetDirectoryName(Path.GetDirectoryName(folder.Directory)));
    }

    [Fact]
    public async Task A_repo_without_onnx_gets_one_native_format_with_all_its_shards()
    {
        var files = TestRepos.Tiny("model-00001-of-00002.safetensors", seed: 1);
        files["model-00002-of-00002.safetensors"] = TestRepos.Tiny(seed: 2)["model.safetensors"];
        files["model.safetensors.index.json"] = TestRepos.Text("""{"metadata": {}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}}""");
        files["pytorch_model.bin"] = TestRepos.Tiny(seed: 3)["model.safetensors"];
        files["tf_model.h5"] = TestRepos.Tiny(seed: 4)["model.safetensors"];
        _hub.Add("acme/sharded", files);
        using var sources = Sources();

        var folder = await sources.ResolveAsync("acme/sharded", Ct);

        Assert.Equal(WeightsFormat.Safetensors, folder.Weights.Format);
        Assert.Equal(["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"], folder.Weights.Files.Select(Path.GetFileName));
        Assert.DoesNotContain(_hub.Requests, r => r.Path.EndsWith("pytorch_model.bin") || r.Path.EndsWith("tf_model.h5"));
    }

    [Fact]
    public async Task Stand_in_hub_a_model_this_build_cannot_serve_is_refused_before_its_weights_are_downloaded()
    {
        var spmWeights = TestRepos.Tiny(seed: 11)["model.safetensors"];
        var unigramWeights = TestRepos.Tiny(seed: 12)["model.safetensors"];
        var gpt2Weights = TestRepos.Tiny(seed: 13)["model.safetensors"];

        // An architecture we build whose only tokenizer is a SentencePiece model we do not read (Llama's tokenizer.model,
        // without a tokenizer.json). The file list shows it.
        _hub.Add("acme/spm-only", new Dictionary<string, byte[]>
        {
            ["config.json"] = TestRepos.Text("""{"model_type": "xlm-roberta", "num_hidden_layers": 2}"""),
            ["tokenizer_config.json"] = TestRepos.Text("""{"do_lower_case": false}"""),
            ["tokenizer.model"] = TestRepos.Tiny(seed: 14)["model.safetensors"],
            ["pytorch_model.bin"] = spmWeights,
        });

        // XLM-RoBERTa: a tokenizer.json, of the Unigram kind (SentencePiece); its settings tell.
        _hub.Add("acme/xlm-r", new Dictionary<string, byte[]>
        {
            ["config.json"] = TestRepos.Text("""{"model_type": "xlm-roberta", "num_hidden_layers": 2}"""),
            ["sentencepiece.bpe.model"] = TestRepos.Tiny(seed: 15)["model.safetensors"],
            ["tokenizer.json"] = TestRepos.Text("""{"version": "1.0", "added_tokens": [], "pre_tokenizer": {"type": "Metaspace", "replacement": "▁"}, "model": {"type": "Unigram", "unk_id": 3, "vocab": [["<s>", 0.0], ["<pad>", 0.0]]}}"""),
            ["model.safetensors"] = unigramWeights,
        });

        // GPT-2: a tokenizer we read, an architecture the graph builder does not build; its config.json tells.
        _hub.Add("acme/gpt2", new Dictionary<string, byte[]>
        {
            ["config.json"] = TestRepos.Text("""{"model_type": "gpt2", "n_layer": 2}"""),
            ["vocab.json"] = TestRepos.Text("""{"<|endoftext|>": 0, "a": 1}"""),
            ["merges.txt"] = TestRepos.Text("#version: 0.2\n"),
            ["model.safetensors"] = gpt2Weights,
        });
        using var sources = Sources();

        var spm = await Assert.ThrowsAsync<ModelNotSupportedException>(() => sources.ResolveAsync("acme/spm-only", Ct));
        Assert.Contains("SentencePiece (tokenizer.model)", spm.Message);
        Assert.Contains("vocab.json + merges.txt", spm.Message);
        Assert.DoesNotContain(_hub.Requests, r => r.Path.Contains("acme/spm-only/resolve/", StringComparison.Ordinal));

        var unigram = await Assert.ThrowsAsync<ModelNotSupportedException>(() => sources.ResolveAsync("acme/xlm-r", Ct));
        Assert.Contains("Unigram (SentencePiece)", unigram.Message);
        Assert.Empty(_hub.CdnGets(unigramWeights));

        var gpt2 = await Assert.ThrowsAsync<ModelNotSupportedException>(() => sources.ResolveAsync("acme/gpt2", Ct));
        Assert.Contains("model_type 'gpt2'", gpt2.Message);
        Assert.Contains("bert, camembert, deberta, deberta-v2, distilbert, mpnet, roberta, xlm-roberta", gpt2.Message);
        Assert.Empty(_hub.CdnGets(gpt2Weights));
        Assert.Empty(_hub.CdnGets(spmWeights));
        Assert.All(new[] { spm, unigram, gpt2 }, e => Assert.DoesNotContain(_root, e.Message));

        // Nothing half made looks like a model: asked again, the answer is the same, and still no weights come.
        await Assert.ThrowsAsync<ModelNotSupportedException>(() => sources.ResolveAsync("acme/gpt2", Ct));
        Assert.Empty(_hub.CdnGets(gpt2Weights));
    }

    [Fact]
    public async Task Requests_may_download_only_what_the_operator_allows()
    {
        _hub.Add("other/model", TestRepos.Tiny("model.onnx"));
        using var sources = Sources(allow: ["acme/*", "BAAI/bge-*"]);

        var error = await Assert.ThrowsAsync<ModelNotAllowedException>(() => sources.ResolveAsync("other/model", Ct));
        Assert.Contains("MODEL_ALLOW", error.Message);
        Assert.Contains("Silo.Gpu fetch other/model", error.Message);
        Assert.Empty(_hub.Requests);

        var options = sources.Options with { DefaultModels = ["all-MiniLM-L6-v2"] };
        Assert.True(options.Allows("sentence-transformers/all-MiniLM-L6-v2")); // a configured default, by its bare name
        Assert.True(options.Allows("microsoft/deberta-xlarge-mnli")); // bert_score's table
        Assert.True(options.Allows("FacebookAI/roberta-large")); // bert_score's table, under the hub's new name
        Assert.True(options.Allows("BAAI/bge-small-en-v1.5"));
        Assert.True(options.Allows("ACME/x"));
        Assert.False(options.Allows("BAAI/other"));
        Assert.True((options with { Allow = ["*"] }).Allows("anyone/anything"));
        Assert.Equal(["sentence-transformers/*", "BAAI/*"], ModelSourceOptions.FromVariables(v => v == "MODEL_ALLOW" ? " sentence-transformers/* , BAAI/* " : null).Allow);
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private ModelSources Sources(string? token = null, bool offline = false, string[]? allow = null) => new(
        new ModelStore(ModelsDir, hostName: "gpu-test"),
        new ModelSourceOptions
        {
            HubEndpoint = _hub.Endpoint,
            Token = token,
            CacheDirectory = CacheDir,
            Offline = offline,
            Allow = allow ?? ["*"],
            RequestTimeout = TimeSpan.FromSeconds(20),
        });

    /// <summary>Writes <paramref name="files"/> into <paramref name="cache"/> as huggingface_hub does: blobs by hash, relative symlinks, refs/main.</summary>
    internal static void BuildPythonCache(string cache, string repo, string commit, IEnumerable<KeyValuePair<string, byte[]>> files)
    {
        var repoFolder = Path.Combine(cache, "models--" + repo.Replace("/", "--"));
        Directory.CreateDirectory(Path.Combine(repoFolder, "refs"));
        File.WriteAllText(Path.Combine(repoFolder, "refs", "main"), commit);
        foreach (var (path, content) in files)
        {
            var etag = HubStandIn.Sha256(content);
            var blob = Path.Combine(repoFolder, "blobs", etag);
            Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
            File.WriteAllBytes(blob, content);
            var link = Path.Combine(repoFolder, "snapshots", commit, path);
            Directory.CreateDirectory(Path.GetDirectoryName(link)!);
            File.CreateSymbolicLink(link, Path.GetRelativePath(Path.GetDirectoryName(link)!, blob));
        }
    }
}
