DROP TABLE IF EXISTS resolutions;
