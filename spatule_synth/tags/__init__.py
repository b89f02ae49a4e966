"""Leg-ring tags drawn from scratch, for codes nobody photographed: `glyphs` (the characters, from
Pillow's bundled font, a TrueType file or a glyph sheet), `ring` (a ring seen from the side: a
cylinder with the code wrapped around it, shading and dirt; also what the demo data builder draws
its rings with) and `render` (one tag as a camera sees it: size, reading direction, perspective,
blur, scratches, noise and JPEG, with its exact mask). `spatule_synth.generate.rendered_source`
turns rendered tags into cutouts.
"""
