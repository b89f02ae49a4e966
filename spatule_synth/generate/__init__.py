"""``--mode=generate``, in the order data flows:

read (`sources`: validated cutouts with `identities`, backgrounds, distractors; GrabCut/model
masks made by `mask_jobs` on a `worker_pool`; rendered tags from `rendered_source`, generated
instances from `gan_source`) -> split (`split`: by identity, sealed across runs)
-> plan (`plan`: everything random about one image, from `random_streams`) -> render (`placing`,
`blends` with the `poisson` seamless clone, `visibility`, `render`: pixels, tight boxes, no
ghosts) -> write (`sample_files`, run chunk by chunk by `execute` or `beam_runner`, resumable
through `progress`) -> assemble (`run`: shards, manifest, report).
"""
