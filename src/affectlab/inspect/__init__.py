"""Looking inside a model: the SMM paper's feature-space figures (§7, Figures 5-6) and its ablation table (§6).

    from affectlab.inspect import visualize, compare
    report = visualize.visualize(load_model("model.safetensors"), samples, "figures/")
    print(compare.format_comparison([compare.Run("smm", smm_scores), compare.Run("mss", mss_scores)]))

:mod:`~affectlab.inspect.features` picks and extracts a model's spaces, :mod:`~affectlab.inspect.embedding`
holds the numbers (t-SNE, covariance ellipses, linear fits, angles), :mod:`~affectlab.inspect.figures` draws
them, :mod:`~affectlab.inspect.visualize` and :mod:`~affectlab.inspect.compare` are the two commands.
See docs/feature-spaces.md.
"""
