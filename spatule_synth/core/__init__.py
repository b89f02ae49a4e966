"""What every stage shares: the run configurations (`config`: generate's in one frozen section per stage), box and mask conventions
(`boxes`, `annotations`), photo decoding (`images`), the one validation path every input goes
through (`validation`), bad-input bookkeeping (`problems`), geometry and augmentation of pasted
objects (`transform`, `augment`), box-to-mask refinement (`masks`) and safe output directories
(`output_dir`)."""
