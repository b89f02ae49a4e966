"""The other modes and run-level outputs: `convert` (real labelled photos -> records, whole or in
`tiles`; `split_from` keeps only a run's eval side), `verify`, `report` (with `gallery`) and the TF
OD API `pipeline_config`."""
