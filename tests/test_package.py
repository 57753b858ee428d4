"""The affectlab package itself: what `import affectlab` gives."""


def test_top_level_entry_points_are_lazy():
    """`import affectlab` stays light; affectlab.load_model and affectlab.Analyzer arrive on first use."""
    import subprocess
    import sys

    code = ("import sys, affectlab; assert 'torch' not in sys.modules; "
            "from affectlab import load_model, Analyzer; assert callable(load_model) and callable(Analyzer)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
