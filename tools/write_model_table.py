"""Count the parameters and GFLOPs of every registered model again into the stored table that
``affectlab models`` prints (src/affectlab/assets/model_table.json). Run it after changing a model:

    python tools/write_model_table.py

tests/models/test_table.py checks the stored numbers against a fresh count.
"""
from affectlab.models.table import write_stored_table

if __name__ == "__main__":
    print(f"wrote {write_stored_table()}")
