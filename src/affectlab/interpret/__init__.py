"""Looking inside a model: the SMM paper's feature-space figures (§7, Figures 5-6) and its ablation table (§6).

    from affectlab.interpret import visualize, compare
    report = visualize.visualize(load_model("model.safetensors"), samples, "figures/")
    print(compare.format_comparison([compare.Run("smm", smm_scores), compare.Run("mss", mss_scores)]))

:mod:`~affectlab.interpret.features` picks and extracts a model's spaces, :mod:`~affectlab.interpret.embedding`
holds the numbers (t-SNE, covariance ellipses, linear fits, angles), :mod:`~affectlab.interpret.figures` draws
them, :mod:`~affectlab.interpret.visualize` and :mod:`~affectlab.interpret.compare` are the two commands.
See docs/feature-spaces.md.
"""
