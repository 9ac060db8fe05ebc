"""Model input data: shapes, random data, loader scripts, Polygraphy JSON/npz files, feed checks.

Entry points: :mod:`.source` (``make_data_source``) for a run's inputs and :mod:`.store`
(``load_inputs``/``save_inputs``/``load_outputs``/``save_outputs``) for files.
"""
