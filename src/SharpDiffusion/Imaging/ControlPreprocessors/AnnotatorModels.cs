namespace SharpDiffusion.Imaging.ControlPreprocessors;

/// <summary>
/// sd-webui-controlnet's preprocessor names (module names and their UI labels) that SharpDiffusion does not run, so a
/// request naming one gets a one-line reason instead of "unknown module". Most need an annotator model (OpenPose, MiDaS,
/// HED, ...); a few need none but are not built here. Either way the map can be made elsewhere and passed with "none".
/// </summary>
public static class AnnotatorModels
{
    /// <summary>Preprocessors that run a neural network (sd-webui-controlnet's legacy table with a managed model, and its
    /// newer model-based classes), by name and by label.</summary>
    public static readonly IReadOnlySet<string> ModelBased = new HashSet<string>(StringComparer.Ordinal)
    {
        "animal_openpose", "openpose", "openpose_face", "openpose_faceonly", "openpose_full", "openpose_hand", "dw_openpose_full",
        "densepose", "densepose_parula", "densepose (pruple bg & purple torso)", "densepose_parula (black bg & blue torso)",
        "depth", "depth_midas", "depth_anything", "depth_anything_v2", "depth_hand_refiner", "depth_leres", "depth_leres++", "depth_zoe",
        "normal_map", "normal_midas", "normal_bae", "normal_dsine",
        "lineart", "lineart_realistic", "lineart_anime", "lineart_anime_denoise", "lineart_coarse",
        "hed", "softedge_hed", "hed_safe", "softedge_hedsafe", "pidinet", "softedge_pidinet", "pidinet_safe", "softedge_pidisafe",
        "softedge_teed", "softedge_anyline", "scribble_hed", "pidinet_scribble", "scribble_pidinet", "pidinet_sketch", "t2ia_sketch_pidi",
        "mlsd", "mediapipe_face", "segmentation", "seg_ufade20k", "oneformer_ade20k", "seg_ofade20k", "oneformer_coco", "seg_ofcoco",
        "anime_face_segment", "seg_anime_face", "mobile_sam", "inpaint_only+lama",
        "clip_vision", "t2ia_style_clipvision", "revision_clipvision", "revision_ignore_prompt", "ip-adapter-auto",
        "ip-adapter_clip_sd15", "ip-adapter_clip_h", "ip-adapter_clip_sdxl", "ip-adapter_clip_g", "ip-adapter_clip_sdxl_plus_vith",
        "ip-adapter_face_id", "ip-adapter_face_id_plus", "ip-adapter_pulid", "instant_id_face_embedding", "instant_id_face_keypoints",
    };

    /// <summary>Model-free preprocessors of sd-webui-controlnet that SharpDiffusion has not built.</summary>
    public static readonly IReadOnlySet<string> NotBuilt = new HashSet<string>(StringComparer.Ordinal)
    {
        "lineart_standard", "lineart_standard (from white bg & black line)", "scribble_xdog", "blur_gaussian", "shuffle",
        "tile_resample", "tile_colorfix", "tile_colorfix+sharp", "color", "t2ia_color_grid", "recolor_luminance", "recolor_intensity",
        "reference_only", "reference_adain", "reference_adain+attn", "inpaint", "inpaint_global_harmonious", "inpaint_only",
    };

    /// <summary>The one-line reason <paramref name="module"/> is refused, or null when it is none of the known names.</summary>
    public static string? Refusal(string module) =>
        ModelBased.Contains(module)
            ? $"preprocessor '{module}' needs an annotator model SharpDiffusion does not run; make the map elsewhere and pass it with module 'none'"
            : NotBuilt.Contains(module)
                ? $"preprocessor '{module}' is not built into SharpDiffusion (it has {string.Join(", ", ControlPreprocessor.All.Select(p => p.Name))}); make the map elsewhere and pass it with module 'none'"
                : null;
}
